// The server's setup: the base, the registry, the batcher, auth, JSON errors. Routes live in
// completions.cpp (OpenAI style), estate_routes.cpp and page.cpp.
#include <filesystem>
#include <thread>

#include "heirloom/engine.h"
#include "serve/server_impl.h"

namespace heirloom::serve {

namespace fs = std::filesystem;
using nlohmann::json;

std::string read_token_message(const std::string& person) { return "heirloom read token v1 for " + person; }

void send_json(httplib::Response& res, const json& j, int status) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

json parse_body(const httplib::Request& req) {
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw HttpError(400, "the request body is not a JSON object", "send Content-Type: application/json with an object");
  return j;
}

Handler guarded(Handler h) {
  return [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
    auto fail = [&](int status, const std::string& msg, const std::string& hint) {
      json e = {{"message", msg}, {"type", status >= 500 ? "server_error" : "invalid_request_error"}};
      if (!hint.empty()) e["hint"] = hint;
      send_json(res, {{"error", e}}, status);
    };
    try {
      h(req, res);
    } catch (const HttpError& e) {
      fail(e.status, e.what(), e.hint());
    } catch (const Error& e) {
      fail(400, e.what(), e.hint());
    } catch (const json::exception& e) {
      fail(400, std::string("bad JSON field: ") + e.what(), "see the API in the README");
    } catch (const std::exception& e) {
      fail(500, e.what(), "");
    }
  };
}

Server::Impl::Impl(const ServerOptions& o) : opt(o), base(load_model(o.base)), cache(o.cache_bytes) {
  base_name = fs::path(o.base).stem().string();
  if (estate::registry_location_given(o.registry)) registry = estate::Registry::open(o.registry);
  batcher = std::make_unique<Batcher>(base, pack_frozen(base, parse_precision(o.precision), false), o.max_batch);
}

Caller Server::Impl::caller(const httplib::Request& req) {
  Caller c;
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) != 0) return c;
  const std::string tok = auth.substr(7);
  if (!opt.token.empty() && tok == opt.token) {
    c.admin = true;
    return c;
  }
  const size_t colon = tok.find(':');
  if (colon == std::string::npos || !registry) throw HttpError(401, "the bearer token is not valid", "check the token the server printed");
  const std::string name = tok.substr(0, colon);
  std::optional<estate::Person> p;
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    p = registry->person(name);
  }
  if (!p || !estate::verify_hex(p->public_key, read_token_message(name), tok.substr(colon + 1)))
    throw HttpError(401, "the read token for '" + name + "' does not verify", "make it with `heirloom estate token " + name + "`");
  c.person = name;
  return c;
}

void Server::Impl::require_admin(const httplib::Request& req) {
  if (caller(req).admin) return;
  if (opt.token.empty()) throw HttpError(403, "this server accepts no writes", "start it with --token TOKEN");
  throw HttpError(401, "writing needs the server's bearer token", "send Authorization: Bearer TOKEN");
}

estate::Registry& Server::Impl::reg() {
  if (!registry) throw HttpError(404, "this server has no estate registry", "start it with --registry DB (made by `heirloom estate init`)");
  return *registry;
}

Server::Server(const ServerOptions& o) : impl_(std::make_unique<Impl>(o)) {
  Impl& s = *impl_;
  s.http.new_task_queue = [n = o.http_threads] { return new httplib::ThreadPool(n); };
  s.http.set_payload_max_length(64ll << 20);
  s.http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_json(res, {{"error", {{"message", "internal error"}, {"type", "server_error"}}}}, 500);
  });
  s.http.Get("/healthz", guarded([&s](const httplib::Request&, httplib::Response& res) {
    const BatcherStats b = s.batcher->stats();
    const CacheStats c = s.cache.stats();
    send_json(res, {{"ok", true}, {"base", s.base_name}, {"registry", s.registry ? s.registry->path() : ""},
                    {"requests", b.requests}, {"tokens", b.tokens}, {"decode_steps", b.steps},
                    {"mean_batch", b.steps ? (double)b.rows / b.steps : 0.0}, {"max_batch", b.max_batch_seen},
                    {"active", b.active}, {"queued", b.queued},
                    {"adapter_cache", {{"entries", c.entries}, {"bytes", c.bytes}, {"limit", c.limit}, {"hits", c.hits},
                                       {"misses", c.misses}, {"evictions", c.evictions}}}});
  }));
  add_completion_routes(s);
  add_estate_routes(s);
  add_page_routes(s);
}

Server::~Server() { stop(); }

int Server::bind() {
  Impl& s = *impl_;
  if (s.opt.port == 0) s.bound_port = s.http.bind_to_any_port(s.opt.host.c_str());
  else if (s.http.bind_to_port(s.opt.host.c_str(), s.opt.port)) s.bound_port = s.opt.port;
  else s.bound_port = -1;
  if (s.bound_port <= 0)
    throw Error("cannot listen on " + s.opt.host + ":" + std::to_string(s.opt.port), "is another server using the port? pick one with --port");
  return s.bound_port;
}

// The engine runs on this thread (see Batcher::run), HTTP on another; when HTTP has stopped and its
// handlers have returned, the engine stops too.
void Server::run() {
  Impl& s = *impl_;
  std::thread http([&s] {
    s.http.listen_after_bind();
    s.batcher->stop();
  });
  s.batcher->run();
  http.join();
}

void Server::stop() { impl_->http.stop(); }
int Server::port() const { return impl_->bound_port; }

}  // namespace heirloom::serve
