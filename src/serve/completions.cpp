// POST /v1/completions and GET /v1/models, in the OpenAI style. A request names its specialist by person,
// adapter id (or unique prefix), or several adapters with scales; the result streams as server-sent
// events when asked. Text streams like `heirloom generate`: what is new since the last complete UTF-8.
#include <chrono>
#include <condition_variable>

#include "heirloom/inherit.h"
#include "heirloom/text.h"
#include "heirloom/vocab.h"
#include "serve/server_impl.h"

namespace heirloom::serve {

using nlohmann::json;

namespace {

struct Chosen {
  std::shared_ptr<const AppliedAdapters> applied;  // null = the base
  json adapters = json::array();                   // [{id, owner, scale, branch?}]
};

double number_field(const json& body, const char* name, double fallback, double lo, double hi) {
  if (!body.contains(name) || body[name].is_null()) return fallback;
  if (!body[name].is_number()) throw HttpError(400, std::string("'") + name + "' must be a number");
  const double v = body[name].get<double>();
  if (!(v >= lo && v <= hi))
    throw HttpError(400, std::string("'") + name + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], found " + std::to_string(v));
  return v;
}

// The adapters a request asks for, checked (readable by the caller, made for this base) and prepared.
Chosen choose(Server::Impl& s, const Caller& who, const json& body, const std::vector<int32_t>& prompt) {
  std::vector<std::pair<std::string, float>> wanted;
  if (body.contains("adapters") && !body["adapters"].is_null()) {
    if (!body["adapters"].is_array()) throw HttpError(400, "'adapters' must be a list of {id, scale}");
    for (const json& a : body["adapters"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_string()) throw HttpError(400, "each of 'adapters' needs an 'id' string");
      wanted.emplace_back(a["id"].get<std::string>(), (float)number_field(a, "scale", 1.0, -100, 100));
    }
  } else {
    const std::string model = body.value("model", "");
    if (!model.empty() && model != "base" && model != s.base_name) wanted.emplace_back(model, 1.f);
  }
  Chosen out;
  if (wanted.empty()) return out;
  std::string key;
  std::vector<std::pair<estate::AdapterRecord, float>> records;
  bool routed = false;
  {
    std::lock_guard<std::mutex> lock(s.registry_mu);
    estate::Registry& r = s.reg();
    for (const auto& [name, scale] : wanted) {
      estate::AdapterRecord rec;
      try {
        rec = r.resolve(name);
      } catch (const Error& e) {
        throw HttpError(404, e.what(), "GET /v1/models lists the people and adapters served");
      }
      if (!s.may_read(who, rec.owner))
        throw HttpError(403, rec.owner + "'s adapters are private", "send their read token (`heirloom estate token " + rec.owner + "`)");
      const auto lin = r.lineage(rec.id);
      routed |= lin && lin->scheme == "concat";
      key += rec.id + "*" + std::to_string(scale) + ";";
      records.emplace_back(rec, scale);
    }
  }
  if (routed && records.size() > 1)
    throw HttpError(400, "a concatenated heir routes between its own adapters and cannot be combined with others");
  auto load = [&](const estate::AdapterRecord& rec) {
    std::vector<uint8_t> bytes;
    {
      std::lock_guard<std::mutex> lock(s.registry_mu);
      bytes = s.reg().file(rec.id);
    }
    return load_adapter_bytes(std::move(bytes), "adapter " + rec.id.substr(0, 12), s.base);
  };
  int branch = -1;
  std::shared_ptr<const Adapter> heir;
  if (routed) {  // the branch with the lowest perplexity on this prompt writes the continuation
    heir = std::make_shared<const Adapter>(load(records[0].first));
    branch = (int)inherit::route_by_prompt(s.base, *heir, prompt);
    key += "#" + std::to_string(branch);
  }
  out.applied = s.cache.get(key, [&]() -> std::shared_ptr<const AppliedAdapters> {
    std::vector<Adapter> loaded;
    std::vector<std::pair<const Adapter*, float>> parts;
    if (heir) {
      parts.emplace_back(&heir->branches[branch], records[0].second);
    } else {
      loaded.reserve(records.size());
      for (const auto& [rec, scale] : records) loaded.push_back(load(rec));
      for (size_t i = 0; i < loaded.size(); ++i) parts.emplace_back(&loaded[i], records[i].second);
    }
    for (const auto& [a, scale] : parts)
      if (a->kind == AdapterKind::full)
        throw HttpError(400, "full adapters change every weight and cannot share a batch",
                        "serve a full adapter as its own base: `heirloom export --adapter A --out merged.gguf`");
    return std::make_shared<const AppliedAdapters>(apply_adapters(s.base, parts));
  });
  for (const auto& [rec, scale] : records) {
    json a = {{"id", rec.id}, {"owner", rec.owner}, {"scale", scale}};
    if (branch >= 0) a["branch"] = branch;
    out.adapters.push_back(a);
  }
  return out;
}

// Tokens flowing from the engine thread to the HTTP thread that answers.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> ids;
  bool done = false;
  std::string finish, error;
  std::atomic<bool> cancelled{false};
};

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

void add_completion_routes(Server::Impl& s) {
  s.http.Get("/v1/models", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const Caller who = s.caller(req);
    json data = json::array({{{"id", "base"}, {"object", "model"}, {"owned_by", "heirloom"}, {"created", 0}, {"base", s.base_name}}});
    if (s.registry) {
      std::lock_guard<std::mutex> lock(s.registry_mu);
      for (const estate::Person& p : s.registry->people())
        if (s.may_read(who, p.name) && !s.registry->adapters(p.name).empty())
          data.push_back({{"id", p.name}, {"object", "model"}, {"owned_by", p.name}, {"created", 0}, {"kind", "person (their newest adapter)"}});
      for (const estate::AdapterRecord& a : s.registry->adapters())
        if (s.may_read(who, a.owner))
          data.push_back({{"id", a.id}, {"object", "model"}, {"owned_by", a.owner}, {"created", 0}, {"kind", a.kind},
                          {"label", a.label}, {"generation", a.generation}});
    }
    send_json(res, {{"object", "list"}, {"data", data}});
  }));

  s.http.Post("/v1/completions", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const Caller who = s.caller(req);
    const json body = parse_body(req);
    if (!body.contains("prompt") || !body["prompt"].is_string())
      throw HttpError(400, "'prompt' must be a string", "e.g. {\"model\": \"alice\", \"prompt\": \"Dear\"}");
    const std::string prompt_text = body["prompt"].get<std::string>();
    auto c = std::make_shared<Completion>();
    c->prompt = encode(s.base.vocab, prompt_text, true);
    const int n_ctx = s.base.config.n_ctx;
    if ((int)c->prompt.size() >= n_ctx)
      throw HttpError(400, "the prompt has " + std::to_string(c->prompt.size()) + " tokens; the model's context is " + std::to_string(n_ctx),
                      "shorten the prompt");
    c->max_tokens = (int)number_field(body, "max_tokens", 16, 0, n_ctx);
    c->sampling.temperature = (float)number_field(body, "temperature", 1.0, 0, 100);
    c->sampling.top_p = (float)number_field(body, "top_p", 1.0, 0, 1);
    c->sampling.top_k = (int)number_field(body, "top_k", 0, 0, s.base.config.n_vocab);
    c->sampling.seed = (uint64_t)number_field(body, "seed", 1, 0, 9007199254740991.0);
    const bool stream = body.value("stream", false);
    const Chosen chosen = choose(s, who, body, c->prompt);
    c->adapter = chosen.applied;

    auto ch = std::make_shared<Channel>();
    c->on_token = [ch](int32_t tok) {
      std::lock_guard<std::mutex> lock(ch->mu);
      ch->ids.push_back(tok);
      ch->cv.notify_all();
      return !ch->cancelled.load();
    };
    c->on_done = [ch](const std::string& finish, const std::string& error) {
      std::lock_guard<std::mutex> lock(ch->mu);
      ch->done = true;
      ch->finish = finish;
      ch->error = error;
      ch->cv.notify_all();
    };
    const std::string id = "cmpl-" + std::to_string(s.next_id++);
    const std::string model = body.value("model", chosen.adapters.empty() ? "base" : chosen.adapters[0]["owner"].get<std::string>());
    const int64_t created = unix_now();
    const size_t prompt_chars = decode(s.base.vocab, c->prompt).size();
    const int n_prompt = (int)c->prompt.size();
    const std::vector<int32_t> prompt_ids = c->prompt;
    s.batcher->submit(c);

    if (!stream) {
      std::unique_lock<std::mutex> lock(ch->mu);
      ch->cv.wait(lock, [&] { return ch->done; });
      if (ch->finish == "error") throw HttpError(400, ch->error);
      std::vector<int32_t> all = prompt_ids;
      all.insert(all.end(), ch->ids.begin(), ch->ids.end());
      const std::string text = decode(s.base.vocab, all).substr(prompt_chars);
      send_json(res, {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
                      {"choices", {{{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", ch->finish}}}},
                      {"usage", {{"prompt_tokens", n_prompt}, {"completion_tokens", ch->ids.size()}, {"total_tokens", n_prompt + ch->ids.size()}}},
                      {"heirloom", {{"tokens", ch->ids}, {"adapters", chosen.adapters}}}});
      return;
    }
    // Server-sent events: one chunk per token (held back while its UTF-8 is incomplete), then the finish
    // reason, then [DONE].
    auto sent = std::make_shared<size_t>(prompt_chars);
    auto used = std::make_shared<size_t>(0);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [&s, ch, sent, used, prompt_ids, id, model, created](size_t, httplib::DataSink& sink) {
          std::unique_lock<std::mutex> lock(ch->mu);
          ch->cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return ch->done || ch->ids.size() > *used; });
          // One token per event, as it was sampled, even when the engine ran ahead of this writer.
          const size_t take = std::min(ch->ids.size(), *used + 1);
          std::vector<int32_t> all = prompt_ids;
          all.insert(all.end(), ch->ids.begin(), ch->ids.begin() + (std::ptrdiff_t)take);
          *used = take;
          const bool done = ch->done && take == ch->ids.size();
          const std::string finish = ch->finish, error = ch->error;
          lock.unlock();
          const std::string text = decode(s.base.vocab, all);
          const size_t stable = done ? text.size() : complete_utf8_prefix(text);
          auto event = [&](const json& j) {
            const std::string line = "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
            return sink.write(line.data(), line.size());
          };
          auto chunk = [&](const std::string& piece, const json& reason) {
            return event({{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
                          {"choices", {{{"text", piece}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", reason}}}}});
          };
          if (stable > *sent) {
            if (!chunk(text.substr(*sent, stable - *sent), nullptr)) return ch->cancelled = true, false;
            *sent = stable;
          }
          if (!done) return sink.is_writable() ? true : (ch->cancelled = true, false);
          if (finish == "error") event({{"error", {{"message", error}, {"type", "invalid_request_error"}}}});
          else chunk("", finish);
          const std::string end = "data: [DONE]\n\n";
          sink.write(end.data(), end.size());
          sink.done();
          return true;
        },
        [ch](bool) { ch->cancelled = true; });
  }));
}

}  // namespace heirloom::serve
