// `heirloom serve` on a real loopback port with a real SQLite registry: completions per person equal
// generate() alone, also when many people's requests decode together; streaming; the estate API with
// consent, auth and privacy; LRU eviction; and clear 4xx errors for bad requests.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "../unit/adapter_fixtures.h"
#include "cli_helpers.h"
#include "heirloom/estate.h"
#include "heirloom/generate.h"
#include "heirloom/serve.h"
#include "heirloom/vocab.h"
#include <nlohmann/json.hpp>

namespace heirloom {
namespace {

using fixtures::noisy_adapter;
using fixtures::tiny_random_base;
using nlohmann::json;

// A registry with ann (norm), ben (lora), cy (norm, private); ann designated ben as her successor.
struct Estate {
  Dir d{"serve"};
  std::string base_path = d / "base.gguf", db = d / "estate.db", keys = d.p.string() + "/keys";
  std::map<std::string, Adapter> adapters;
  std::map<std::string, std::string> ids;
  Estate() {
    const Model& base = tiny_random_base();
    save_model(base, base_path);
    std::filesystem::create_directories(keys);
    estate::Registry r = estate::Registry::create(db);
    const std::pair<const char*, AdapterKind> people[] = {{"ann", AdapterKind::norm}, {"ben", AdapterKind::lora}, {"cy", AdapterKind::norm}};
    uint64_t seed = 40;
    for (const auto& [name, kind] : people) {
      const estate::KeyPair k = estate::generate_key();
      estate::save_secret_key(k, keys + "/" + name + ".key");
      r.add_person(name, estate::to_hex(k.public_key.data(), k.public_key.size()));
      Adapter a = noisy_adapter(kind, seed++);
      a.info.owner = name;
      a.info.base_fingerprint = base.fingerprint();
      save_adapter(a, base.config, d / (std::string(name) + ".gguf"), StorageType::f16);
      adapters[name] = load_adapter(d / (std::string(name) + ".gguf"), base);  // as served: f16-rounded
      std::ifstream in(d / (std::string(name) + ".gguf"), std::ios::binary);
      ids[name] = r.add_adapter({std::istreambuf_iterator<char>(in), {}}, k, name).id;
    }
    r.designate(ids["ann"], "ben", estate::load_secret_key(keys + "/ann.key"));
  }
};

struct Running {
  serve::Server server;
  std::thread thread;
  int port;
  explicit Running(const serve::ServerOptions& o) : server(o), port(server.bind()) {
    thread = std::thread([this] { server.run(); });
  }
  ~Running() {
    server.stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    return c;
  }
};

serve::ServerOptions options(const Estate& e) {
  serve::ServerOptions o;
  o.base = e.base_path;
  o.registry = e.db;
  o.key_dir = e.keys;
  o.port = 0;
  o.token = "write-token";
  o.private_people = {"cy"};
  o.precision = "fp32";
  return o;
}

json post(httplib::Client& c, const std::string& path, const json& body, int expect, const std::string& token = "") {
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  auto res = c.Post(path.c_str(), h, body.dump(), "application/json");
  EXPECT_TRUE(res) << path;
  if (!res) return {};
  EXPECT_EQ(res->status, expect) << path << " " << body.dump() << " -> " << res->body;
  json j = json::parse(res->body, nullptr, false);
  if (expect >= 400) {
    EXPECT_TRUE(j.contains("error") && j["error"].contains("message")) << res->body;
  }
  return j;
}

// What generate() gives for the same request alone, in-process.
std::vector<int32_t> alone(const Adapter* a, const std::string& prompt, int n, const SamplingOptions& s) {
  const Model& base = tiny_random_base();
  AppliedAdapters ap;
  if (a) ap = apply_adapters(base, {{a, 1.f}});
  return generate(base, encode(base.vocab, prompt, true), n, s, a ? ap.view_ptr() : nullptr);
}

TEST(Serve, CompletionsPerPersonEqualGenerateAloneAlsoWhenBatchedTogether) {
  Estate e;
  Running srv(options(e));
  auto c = srv.client();
  const SamplingOptions s{0.9f, 20, 0.9f, 7};
  const std::vector<std::string> who = {"ann", "ben", "base", "ann", "ben", "base", "ann", "ben"};
  // Alone, one after another.
  std::vector<std::vector<int32_t>> solo;
  for (size_t i = 0; i < who.size(); ++i) {
    const std::string prompt = "letter " + std::to_string(i) + " to";
    const json r = post(c, "/v1/completions", {{"model", who[i]}, {"prompt", prompt}, {"max_tokens", 40}, {"temperature", s.temperature},
                                               {"top_k", s.top_k}, {"top_p", s.top_p}, {"seed", s.seed}}, 200);
    solo.push_back(r["heirloom"]["tokens"].get<std::vector<int32_t>>());
    const Adapter* a = who[i] == "base" ? nullptr : &e.adapters[who[i]];
    EXPECT_EQ(solo.back(), alone(a, prompt, 40, s)) << who[i];
    EXPECT_EQ(r["object"], "text_completion");
    EXPECT_EQ(r["usage"]["completion_tokens"], solo.back().size());
  }
  // Together: every request at once, from its own client thread.
  std::vector<std::vector<int32_t>> together(who.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < who.size(); ++i)
    threads.emplace_back([&, i] {
      auto ci = srv.client();
      const json r = post(ci, "/v1/completions", {{"model", who[i]}, {"prompt", "letter " + std::to_string(i) + " to"}, {"max_tokens", 40},
                                                  {"temperature", s.temperature}, {"top_k", s.top_k}, {"top_p", s.top_p}, {"seed", s.seed}}, 200);
      together[i] = r["heirloom"]["tokens"].get<std::vector<int32_t>>();
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < who.size(); ++i) EXPECT_EQ(together[i], solo[i]) << "request " << i << " (" << who[i] << ")";
  const json h = json::parse(c.Get("/healthz")->body);
  EXPECT_GE(h["max_batch"].get<int>(), 2) << "requests of different people never shared a forward pass: " << h.dump();
  // A combination of adapters with scales.
  const json r = post(c, "/v1/completions", {{"adapters", {{{"id", e.ids["ann"]}, {"scale", 0.5}}, {{"id", "ben"}, {"scale", 1.0}}}},
                                             {"prompt", "x"}, {"max_tokens", 5}}, 200);
  EXPECT_EQ(r["heirloom"]["adapters"].size(), 2u);
}

TEST(Serve, StreamingSendsTheSameTextAsOneResponse) {
  Estate e;
  Running srv(options(e));
  auto c = srv.client();
  const json body = {{"model", "ann"}, {"prompt", "Dear"}, {"max_tokens", 30}, {"temperature", 0}};
  const json whole = post(c, "/v1/completions", body, 200);
  json sbody = body;
  sbody["stream"] = true;
  auto res = c.Post("/v1/completions", sbody.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::string text, finish;
  size_t pos = 0, events = 0;
  bool done = false;
  while ((pos = res->body.find("data: ", pos)) != std::string::npos) {
    const size_t end = res->body.find("\n\n", pos);
    const std::string data = res->body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") { done = true; break; }
    const json ev = json::parse(data);
    text += ev["choices"][0]["text"].get<std::string>();
    if (!ev["choices"][0]["finish_reason"].is_null()) finish = ev["choices"][0]["finish_reason"];
    ++events;
  }
  EXPECT_TRUE(done);
  EXPECT_GT(events, 2u);
  EXPECT_EQ(text, whole["choices"][0]["text"].get<std::string>());
  EXPECT_EQ(finish, whole["choices"][0]["finish_reason"].get<std::string>());
}

TEST(Serve, EstateApiConsentAuthPrivacyAndErrors) {
  Estate e;
  serve::ServerOptions o = options(e);
  o.cache_bytes = 1;  // every new adapter evicts the last: the LRU bound holds
  Running srv(o);
  auto c = srv.client();
  // Reads: cy is private.
  json people = json::parse(c.Get("/estate/people")->body);
  ASSERT_EQ(people.size(), 3u);
  for (const json& p : people) EXPECT_EQ(p["adapters"].size(), p["name"] == "cy" ? 0u : 1u) << p.dump();
  json models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["data"].dump().find("\"cy\""), std::string::npos);
  post(c, "/v1/completions", {{"model", "cy"}, {"prompt", "hi"}}, 403);
  const std::string cy_token = "cy:" + estate::sign_hex(estate::load_secret_key(e.keys + "/cy.key"), serve::read_token_message("cy"));
  post(c, "/v1/completions", {{"model", "cy"}, {"prompt", "hi"}, {"max_tokens", 3}}, 200, cy_token);
  post(c, "/v1/completions", {{"model", "cy"}, {"prompt", "hi"}}, 401, "cy:00");
  // Bad requests: 4xx with a JSON error, and the server goes on.
  auto res = c.Post("/v1/completions", "{not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  post(c, "/v1/completions", {{"model", "nobody"}, {"prompt", "x"}}, 404);
  post(c, "/v1/completions", {{"prompt", 7}}, 400);
  post(c, "/v1/completions", {{"prompt", "x"}, {"max_tokens", -1}}, 400);
  post(c, "/v1/completions", {{"prompt", "x"}, {"temperature", "hot"}}, 400);
  post(c, "/v1/completions", {{"prompt", std::string(400, 'a')}}, 400);  // longer than the context
  post(c, "/v1/completions", {{"adapters", {{{"scale", 1}}}}, {"prompt", "x"}}, 400);
  EXPECT_EQ(c.Get("/estate/adapters/ffffffffffff")->status, 404);
  // The overlap report before inheriting, in plain words.
  const json rep = post(c, "/estate/overlap", {{"parent", "ann"}, {"child", "ben"}}, 400);  // norm vs lora: different kinds
  const json ok = post(c, "/estate/overlap", {{"parent", "ann"}, {"child", "cy"}}, 200, cy_token);
  EXPECT_TRUE(ok.contains("regime") && ok.contains("predicted_retention") && ok["summary"].size() >= 3) << ok.dump();
  EXPECT_EQ(ok["memory"]["concat_bytes"].get<int64_t>(), ok["parent"]["bytes"].get<int64_t>() + ok["child"]["bytes"].get<int64_t>());
  // Writes need the token; inheritance needs the owner's designation.
  post(c, "/estate/inherit", {{"parent", "ann"}, {"successor", "cy"}}, 401);
  post(c, "/estate/inherit", {{"parent", "ann"}, {"successor", "cy"}}, 403, "write-token");  // ann never designated cy
  post(c, "/estate/designate", {{"adapter", "ann"}, {"successor", "cy"}}, 201, "write-token");
  const json heir = post(c, "/estate/inherit", {{"parent", "ann"}, {"successor", "cy"}, {"scheme", "linear"}}, 201, "write-token");
  EXPECT_EQ(heir["heir"]["owner"], "cy");
  EXPECT_EQ(heir["heir"]["generation"], 1);
  const json lineage = json::parse(c.Get("/estate/lineage", {{"Authorization", "Bearer write-token"}})->body);
  EXPECT_EQ(lineage["edges"].size(), 2u) << lineage.dump();
  // The heir serves like any adapter, and the small cache evicted on the way.
  post(c, "/v1/completions", {{"model", heir["heir"]["id"]}, {"prompt", "x"}, {"max_tokens", 3}}, 200, "write-token");
  const json h = json::parse(c.Get("/healthz")->body);
  EXPECT_GT(h["adapter_cache"]["evictions"].get<int>(), 0) << h.dump();
  EXPECT_EQ(h["adapter_cache"]["entries"].get<int>(), 1) << h.dump();
  // The page is served.
  res = c.Get("/");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("Inherit an estate"), std::string::npos);
  EXPECT_EQ(c.Get("/app.js")->status, 200);
}

}  // namespace
}  // namespace heirloom
