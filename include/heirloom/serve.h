// `heirloom serve` (issue 9): one base serving many people's specialists over HTTP on loopback.
//   POST /v1/completions   OpenAI-style completions; `model` names a person or an adapter, `adapters`
//                          [{id, scale}] combines several; `stream` sends server-sent events
//   GET  /v1/models        the base and every adapter this caller may read
//   /estate/...            people, adapters, lineage, overlap reports, inheritance, bet results
//   /                      the estate's web page
// Requests of different people decode together, one forward pass per token for all of them (see
// src/serve/batcher.h). Writes need the bearer token; a private person's adapters need their read token.
#pragma once
#include <cstdint>
#include <memory>
#include <set>
#include <string>

namespace heirloom::serve {

struct ServerOptions {
  std::string base;                 // base model (GGUF)
  std::string registry;             // estate registry (SQLite); empty or missing = the base alone
  std::string key_dir;              // secret keys used to sign what the server writes (heirs, uploads)
  std::string results_dir;          // bet results (JSON + SVG) shown on the page; empty = none
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0 = any free port (see Server::port)
  std::string token;                // bearer token for writes; empty = writes refused
  std::set<std::string> private_people;  // whose adapters only they (or the token) may read and use
  int64_t cache_bytes = 256ll << 20;     // LRU bound of the loaded adapters
  int max_batch = 32;               // rows of one decode step
  std::string precision = "auto";   // auto, fp32, bf16
  int http_threads = 64;
};

// A read token proves a person holds their secret key: NAME:HEX(signature of read_token_message(NAME)).
std::string read_token_message(const std::string& person);

class Server {
 public:
  explicit Server(const ServerOptions& o);  // loads the base; Error on a bad base or registry
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  int bind();    // binds the port (Error when taken); returns it
  void run();    // serves until stop(); call bind() first. The model runs on the calling thread: best the one
                 // that constructed the server (see serve/batcher.h)
  void stop();   // from any thread
  int port() const;

  struct Impl;  // src/serve/server_impl.h

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace heirloom::serve
