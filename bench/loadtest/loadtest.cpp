// heirloom_loadtest: many concurrent clients against a running `heirloom serve` on loopback.
// First every distinct request (person × prompt) is sent alone, one at a time; then C clients send them
// at random for D seconds. Reports errors, responses that differ from the same request alone, latency
// p50/p99, aggregate generated tokens/s, the server's mean decode batch, and the tokens/s of the
// requests sent alone (one at a time, with HTTP and prompt included). Exit 1 on any error or
// difference. Usage: heirloom_loadtest --port P --models a,b,c [--clients 16] [--seconds 60] [--tokens 32]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  int port = 8080, clients = 16, seconds = 60, tokens = 32;
  std::vector<std::string> models;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "loadtest: %s needs a value\n", k.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (k == "--port") a.port = std::stoi(val());
    else if (k == "--clients") a.clients = std::stoi(val());
    else if (k == "--seconds") a.seconds = std::stoi(val());
    else if (k == "--tokens") a.tokens = std::stoi(val());
    else if (k == "--models") {
      std::stringstream ss(val());
      for (std::string m; std::getline(ss, m, ',');) a.models.push_back(m);
    } else {
      std::printf("usage: heirloom_loadtest --port P --models a,b,... [--clients 16] [--seconds 60] [--tokens 32]\n");
      std::exit(k == "--help" || k == "-h" ? 0 : 2);
    }
  }
  if (a.models.empty()) a.models = {"base"};
  return a;
}

const char* kPrompts[] = {"Dear friend,", "The meaning of", "In the morning we", "import asyncio\n", "Once upon a time"};

json request(const std::string& model, int prompt, int tokens) {
  return {{"model", model}, {"prompt", kPrompts[prompt]}, {"max_tokens", tokens}, {"temperature", 0.8},
          {"top_k", 40}, {"top_p", 0.95}, {"seed", 1000 + prompt}};
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, (size_t)(p * (v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  const int n_prompts = (int)(sizeof kPrompts / sizeof *kPrompts);
  // Each distinct request alone: the reference every loaded response must equal.
  std::map<std::pair<size_t, int>, std::vector<int32_t>> solo;
  httplib::Client c0("127.0.0.1", a.port);
  c0.set_read_timeout(120, 0);
  int64_t solo_tokens = 0;
  const auto s0 = Clock::now();
  for (size_t m = 0; m < a.models.size(); ++m)
    for (int p = 0; p < n_prompts; ++p) {
      auto res = c0.Post("/v1/completions", request(a.models[m], p, a.tokens).dump(), "application/json");
      if (!res || res->status != 200) {
        std::fprintf(stderr, "loadtest: the solo request for %s failed: %s\n", a.models[m].c_str(), res ? res->body.c_str() : "no connection");
        return 1;
      }
      solo[{m, p}] = json::parse(res->body)["heirloom"]["tokens"].get<std::vector<int32_t>>();
      solo_tokens += (int64_t)solo[{m, p}].size();
    }
  const double solo_secs = std::chrono::duration<double>(Clock::now() - s0).count();
  const json before = json::parse(c0.Get("/healthz")->body);

  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<int64_t> tokens{0}, errors{0}, differ{0}, done{0};
  const auto t0 = Clock::now(), stop = t0 + std::chrono::seconds(a.seconds);
  std::vector<std::thread> clients;
  for (int i = 0; i < a.clients; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", a.port);
      c.set_read_timeout(120, 0);
      std::mt19937 rng(i);
      while (Clock::now() < stop) {
        const size_t m = rng() % a.models.size();
        const int p = (int)(rng() % n_prompts);
        const auto s = Clock::now();
        auto res = c.Post("/v1/completions", request(a.models[m], p, a.tokens).dump(), "application/json");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - s).count();
        if (!res || res->status != 200) { ++errors; continue; }
        const auto got = json::parse(res->body)["heirloom"]["tokens"].get<std::vector<int32_t>>();
        if (got != solo[{m, p}]) ++differ;
        tokens += (int64_t)got.size();
        ++done;
        std::lock_guard<std::mutex> lock(mu);
        latencies.push_back(ms);
      }
    });
  for (auto& t : clients) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const json after = json::parse(c0.Get("/healthz")->body);
  const double steps = after["decode_steps"].get<double>() - before["decode_steps"].get<double>();
  const double rows = after["mean_batch"].get<double>() * after["decode_steps"].get<double>() -
                      before["mean_batch"].get<double>() * before["decode_steps"].get<double>();
  const json out = {{"clients", a.clients}, {"seconds", secs}, {"models", a.models}, {"max_tokens", a.tokens},
                    {"requests", done.load()}, {"errors", errors.load()}, {"differ_from_solo", differ.load()},
                    {"latency_ms_p50", percentile(latencies, 0.5)}, {"latency_ms_p99", percentile(latencies, 0.99)},
                    {"tokens_per_second", tokens.load() / secs}, {"requests_per_second", done.load() / secs},
                    {"mean_decode_batch", steps > 0 ? rows / steps : 0.0}, {"max_decode_batch", after["max_batch"]},
                    {"solo_requests", solo.size()}, {"solo_tokens_per_second", solo_tokens / solo_secs}};
  std::printf("%s\n", out.dump(2).c_str());
  return errors.load() == 0 && differ.load() == 0 && done.load() > 0 ? 0 : 1;
}
