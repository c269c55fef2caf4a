// Continuous batching for the server: one engine (Batcher::run) runs every person's requests together. A new
// request's prompt is run alone (into its own KV cache), then each step decodes one token for every
// active request in ONE forward pass, each row with its own adapter (per-row norm gains, LoRA, steering)
// and its own cache position. The row-exact products (core/gemm.h) make each request's tokens exactly what
// it gets alone, and exactly what `heirloom generate` prints for the same seed.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "heirloom/adapter.h"
#include "heirloom/engine.h"
#include "heirloom/generate.h"

namespace heirloom::serve {

struct Completion {
  std::vector<int32_t> prompt;
  int max_tokens = 16;
  SamplingOptions sampling;
  std::shared_ptr<const AppliedAdapters> adapter;  // null = the base; kept alive by the request
  // Called on the engine thread for each new token; false cancels the request (the client went away).
  std::function<bool(int32_t)> on_token;
  // Called once on the engine thread at the end: "stop" (EOS), "length" (max_tokens or the context),
  // "cancelled", or "error" with a message.
  std::function<void(const std::string& finish_reason, const std::string& error)> on_done;
};

struct BatcherStats {
  int64_t requests = 0, tokens = 0, steps = 0, rows = 0;  // rows: sum of batch sizes over decode steps
  int active = 0, queued = 0, max_batch_seen = 0;
};

class Batcher {
 public:
  // `packed`: the base packed once (pack_frozen; null = fp32 products through the BLAS). max_batch bounds the rows of one step.
  Batcher(const Model& base, std::shared_ptr<const FrozenWeights> packed, int max_batch);
  ~Batcher();  // finishes nothing: queued and active requests end as "cancelled"
  // Runs the engine on the calling thread until stop(). It should be the thread that did the process's
  // other OpenMP work: libgomp keeps a worker pool per thread that opens parallel regions, and once there
  // are more pooled threads than cores its workers sleep after ~100 spins, so every parallel region of a
  // decode step paid a futex wake-up (a single stream ran at 120 tokens/s instead of 1,000).
  void run();
  void stop();  // from any thread but a signal handler
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  void submit(std::shared_ptr<Completion> c);
  BatcherStats stats() const;

 private:
  struct Active;
  void admit(std::shared_ptr<Completion> c);
  void step();
  bool emit(Active& a, int32_t tok);

  const Model& base_;
  std::shared_ptr<const FrozenWeights> packed_;
  const int max_batch_;
  WorkspacePtr prefill_ws_, step_ws_;
  std::vector<std::unique_ptr<Active>> active_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Completion>> queue_;
  bool stopping_ = false;
  BatcherStats stats_;
};

}  // namespace heirloom::serve
