// What the server's route files share: its state, who is calling, and JSON errors.
#pragma once
#include <httplib.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "heirloom/error.h"
#include "heirloom/estate.h"
#include "heirloom/model.h"
#include "heirloom/serve.h"
#include "serve/adapter_cache.h"
#include "serve/batcher.h"

namespace heirloom::serve {

// An error with its HTTP status (4xx for the client's mistakes).
struct HttpError : Error {
  int status;
  HttpError(int s, const std::string& what, const std::string& hint = "") : Error(what, hint), status(s) {}
};

struct Caller {
  bool admin = false;  // holds the server's bearer token
  std::string person;  // holds this person's read token
};

struct Server::Impl {
  ServerOptions opt;
  Model base;
  std::string base_name;
  std::optional<estate::Registry> registry;
  std::mutex registry_mu;  // one SQLite connection: one user at a time
  AdapterCache cache;
  std::unique_ptr<Batcher> batcher;
  httplib::Server http;
  std::atomic<int64_t> next_id{1};
  int bound_port = 0;

  explicit Impl(const ServerOptions& o);
  Caller caller(const httplib::Request& req);
  bool may_read(const Caller& c, const std::string& owner) const {
    return c.admin || !opt.private_people.count(owner) || c.person == owner;
  }
  void require_admin(const httplib::Request& req);
  estate::Registry& reg();  // HttpError 404 when the server has no registry
};

// A handler whose exceptions become JSON errors: HttpError → its status, Error and bad JSON → 400.
using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
Handler guarded(Handler h);
void send_json(httplib::Response& res, const nlohmann::json& j, int status = 200);
nlohmann::json parse_body(const httplib::Request& req);  // HttpError 400 unless a JSON object

void add_completion_routes(Server::Impl& s);
void add_estate_routes(Server::Impl& s);
void add_page_routes(Server::Impl& s);

}  // namespace heirloom::serve
