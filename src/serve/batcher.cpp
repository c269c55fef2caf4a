// The engine of the server: admit (prefill alone), then decode every active request together.
// Sampling follows generate() (src/model/sampling.cpp) draw for draw, so a request's tokens match it.
#include "serve/batcher.h"

#include <algorithm>

#include "core/rng.h"
#include "heirloom/error.h"
#include "model/workspace.h"

namespace heirloom::serve {

struct Batcher::Active {
  std::shared_ptr<Completion> c;
  KvCache kv;
  Rng rng;
  int produced = 0;
  int32_t last = 0;
  std::string finish;  // set when the request is over
};

Batcher::Batcher(const Model& base, std::shared_ptr<const FrozenWeights> packed, int max_batch)
    : base_(base), packed_(std::move(packed)), max_batch_(std::max(1, max_batch)) {
  prefill_ws_ = make_workspace();
  step_ws_ = make_workspace();
  prefill_ws_->frozen = packed_;
  step_ws_->frozen = packed_;
}

Batcher::~Batcher() {
  for (auto& c : queue_)
    if (c->on_done) c->on_done("cancelled", "the server is shutting down");
  for (auto& a : active_)
    if (a->c->on_done) a->c->on_done("cancelled", "the server is shutting down");
}

void Batcher::submit(std::shared_ptr<Completion> c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(c));
    ++stats_.requests;
  }
  cv_.notify_all();
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

BatcherStats Batcher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  BatcherStats s = stats_;
  s.queued = (int)queue_.size();
  return s;
}

void Batcher::run() {
  for (;;) {
    std::vector<std::shared_ptr<Completion>> admitted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !active_.empty(); });
      if (stopping_) return;
      while (!queue_.empty() && (int)(active_.size() + admitted.size()) < max_batch_) {
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (auto& c : admitted) admit(std::move(c));
    if (!active_.empty()) step();
    // Finished requests leave; the rest decode on in the next step.
    std::erase_if(active_, [](const std::unique_ptr<Active>& a) { return !a->finish.empty(); });
    std::lock_guard<std::mutex> lock(mu_);
    stats_.active = (int)active_.size();
  }
}

// One sampled token: counted, streamed, and checked against the request's ends, in generate()'s order.
bool Batcher::emit(Active& a, int32_t tok) {
  ++a.produced;
  a.last = tok;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.tokens;
  }
  if (a.c->on_token && !a.c->on_token(tok)) a.finish = "cancelled";
  else if (tok == base_.vocab.eos_id) a.finish = "stop";
  else if (a.produced >= a.c->max_tokens || a.kv.n_pos >= base_.config.n_ctx) a.finish = "length";
  if (!a.finish.empty() && a.c->on_done) a.c->on_done(a.finish, "");
  return a.finish.empty();
}

void Batcher::admit(std::shared_ptr<Completion> c) {
  auto a = std::make_unique<Active>();
  a->c = std::move(c);
  a->rng = Rng(a->c->sampling.seed);
  const int n = (int)a->c->prompt.size(), n_ctx = base_.config.n_ctx;
  try {
    if (n < 1 || n >= n_ctx)
      throw Error("the prompt has " + std::to_string(n) + " tokens; the model's context is " + std::to_string(n_ctx));
    if (a->c->max_tokens <= 0) {
      if (a->c->on_done) a->c->on_done("length", "");
      return;
    }
    a->kv = make_kv_cache(base_.config, 1, std::min(n_ctx, n + a->c->max_tokens));
    const AdapterView* view = a->c->adapter ? a->c->adapter->view_ptr() : nullptr;
    ForwardOptions fo;
    fo.cache = &a->kv;
    fo.last_logits_only = true;
    forward(base_, *prefill_ws_, Batch{a->c->prompt.data(), nullptr, 1, n}, one_adapter(view), fo);
  } catch (const std::exception& e) {
    if (a->c->on_done) a->c->on_done("error", e.what());
    return;
  }
  const int32_t tok = sample_token(logits(*prefill_ws_), base_.config.n_vocab, a->c->sampling, a->rng.uniform());
  if (emit(*a, tok)) active_.push_back(std::move(a));
}

void Batcher::step() {
  std::vector<int32_t> tokens;
  std::vector<const AdapterView*> views;
  std::vector<KvCache*> caches;
  std::vector<Active*> rows;
  for (auto& a : active_) {
    if (!a->finish.empty()) continue;
    rows.push_back(a.get());
    tokens.push_back(a->last);
    views.push_back(a->c->adapter ? a->c->adapter->view_ptr() : nullptr);
    caches.push_back(&a->kv);
  }
  if (rows.empty()) return;
  const int B = (int)rows.size(), V = base_.config.n_vocab;
  ForwardOptions fo;
  fo.caches = caches;
  fo.last_logits_only = true;
  try {
    forward(base_, *step_ws_, Batch{tokens.data(), nullptr, B, 1}, views, fo);
  } catch (const std::exception& e) {  // not expected: every row was checked at admission
    for (Active* a : rows) {
      a->finish = "error";
      if (a->c->on_done) a->c->on_done("error", e.what());
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.steps;
    stats_.rows += B;
    stats_.max_batch_seen = std::max(stats_.max_batch_seen, B);
  }
  for (int b = 0; b < B; ++b)
    emit(*rows[b], sample_token(logits(*step_ws_) + (size_t)b * V, V, rows[b]->c->sampling, rows[b]->rng.uniform()));
}

}  // namespace heirloom::serve
