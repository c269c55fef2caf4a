// `heirloom serve`: the estate's server — completions for many people from one base, the estate API and
// its web page — on loopback by default.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "heirloom/estate.h"
#include "heirloom/serve.h"

namespace heirloom::cli {

namespace {

serve::Server* g_server = nullptr;
void on_signal(int) {
  if (g_server) g_server->stop();
}

// The bets' results beside the program (build/heirloom → ../experiments/...) or under the current folder.
std::string default_results_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (const fs::path& p : {fs::current_path() / "experiments/bets/results",
                            ec ? fs::path() : exe.parent_path().parent_path() / "experiments/bets/results"})
    if (!p.empty() && fs::is_directory(p, ec)) return p.string();
  return "";
}

std::string random_token() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  uint8_t b[16] = {};
  in.read(reinterpret_cast<char*>(b), sizeof b);
  return estate::to_hex(b, sizeof b);
}

}  // namespace

Action add_serve(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("serve", "serve many people's specialists from one base: OpenAI-style completions, the estate API and its web page");
  struct Opts { serve::ServerOptions s; int64_t cache_mib = 256; std::vector<std::string> priv; bool no_token = false; };
  auto o = std::make_shared<Opts>();
  sub->add_option("--base,--model", o->s.base, "the base model (GGUF); default: the moe-30m base under models/ or the cache");
  sub->add_option("--registry", o->s.registry, "the estate registry (default: " + estate::default_registry_path() + "; served without adapters when missing)");
  sub->add_option("--host", o->s.host, "address to listen on (127.0.0.1: this machine only)")->capture_default_str();
  sub->add_option("--port", o->s.port, "port (0 = any free one)")->capture_default_str()->check(CLI::Range(0, 65535));
  sub->add_option("--token", o->s.token, "bearer token for writes (default: $HEIRLOOM_TOKEN, else a random one, printed)");
  sub->add_flag("--read-only", o->no_token, "accept no writes at all");
  sub->add_option("--private", o->priv, "people whose adapters only they may read and use (with their `heirloom estate token`)")->expected(1, -1);
  sub->add_option("--keys", o->s.key_dir, "folder of the secret keys the server signs with (default: " + estate::default_key_dir() + ")");
  sub->add_option("--results", o->s.results_dir, "bet results (JSON + SVG) shown on the page (default: experiments/bets/results)");
  sub->add_option("--cache-mib", o->cache_mib, "memory bound of the loaded adapters (LRU)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--max-batch", o->s.max_batch, "most requests decoded together in one forward pass")->capture_default_str()->check(CLI::Range(1, 1024));
  add_precision_option(*sub, o->s.precision);
  add_common_flags(*sub, common);
  return [o, &common] {
    serve::ServerOptions s = o->s;
    s.base = resolve_model(s.base);
    if (s.registry.empty()) s.registry = estate::default_registry_path();
    if (s.results_dir.empty()) s.results_dir = default_results_dir();
    s.private_people.insert(o->priv.begin(), o->priv.end());
    s.cache_bytes = o->cache_mib << 20;
    if (o->no_token) s.token.clear();
    else if (s.token.empty()) {
      const char* env = std::getenv("HEIRLOOM_TOKEN");
      s.token = env && *env ? env : random_token();
    }
    serve::Server server(s);
    const int port = server.bind();
    const bool has_registry = estate::registry_location_given(s.registry);
    if (common.json) {
      print_json({{"url", "http://" + s.host + ":" + std::to_string(port) + "/"}, {"port", port}, {"base", s.base},
                  {"registry", has_registry ? s.registry : ""}, {"token", s.token}});
    } else {
      std::printf("heirloom serve: base %s, registry %s\n", s.base.c_str(), has_registry ? s.registry.c_str() : "(none: the base alone)");
      std::printf("open http://%s:%d/%s\n", s.host.c_str(), port, s.token.empty() ? "" : ("#token=" + s.token).c_str());
      if (!s.token.empty()) std::printf("write token: %s (Authorization: Bearer ...)\n", s.token.c_str());
      std::printf("stop with Ctrl-C\n");
    }
    std::fflush(stdout);
    g_server = &server;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    server.run();
    g_server = nullptr;
    return 0;
  };
}

}  // namespace heirloom::cli
