// `heirloom generate`: continue a prompt, streaming tokens to the terminal.
#include <chrono>
#include <cstdio>

#include "commands.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/generate.h"
#include "heirloom/inherit.h"
#include "heirloom/model.h"
#include "heirloom/text.h"

namespace heirloom::cli {


Action add_generate(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("generate", "generate text from a prompt (KV cache; greedy or sampled)");
  struct Opts { std::string model, prompt, precision = "auto"; int n = 200; SamplingOptions s; std::vector<std::string> adapters; };
  auto o = std::make_shared<Opts>();
  sub->add_option("--model,--base", o->model, "model (GGUF); default: the moe-30m base under models/ or the cache")->check(CLI::ExistingFile);
  sub->add_option("--prompt", o->prompt, "text to continue")->capture_default_str();
  sub->add_option("-n,--tokens", o->n, "tokens to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--temperature", o->s.temperature, "sampling temperature (0 = greedy)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", o->s.top_k, "keep the k most likely tokens (0 = off)")->capture_default_str()->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", o->s.top_p, "keep the smallest set with this probability (1 = off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  sub->add_option("--seed", o->s.seed, "sampling seed")->capture_default_str();
  add_adapter_option(*sub, o->adapters);
  add_precision_option(*sub, o->precision);
  add_common_flags(*sub, common);
  return [o, &common] {
    const Precision precision = resolve_precision(parse_precision(o->precision));  // before loading: fail fast
    o->model = resolve_model(o->model);
    const Model base = load_model(o->model);
    LoadedAdapters ad = load_adapters(base, o->adapters);
    const std::vector<int32_t> prompt = encode(base.vocab, o->prompt, true);
    if (ad.routed) {
      // A concatenated heir: the branch with the lowest perplexity on the prompt writes the continuation.
      const size_t b = inherit::route_by_prompt(base, *ad.routed, prompt);
      if (!common.json)
        std::fprintf(stderr, "[concatenated heir: branch %zu (%s) has the lowest perplexity on the prompt]\n", b,
                     ad.routed->branches[b].info.owner.c_str());
      ad.applied = apply_adapters(base, {{&ad.routed->branches[b], 1.f}});
    }
    const Model& m = ad.applied.model(base);
    const auto tp = std::chrono::steady_clock::now();
    std::shared_ptr<const FrozenWeights> packed = pack_frozen(m, precision, false);  // once, before the first token
    const double pack_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count();
    // Stream by decoding everything so far and printing what is new, holding back a trailing
    // incomplete UTF-8 sequence: byte tokens complete a character (or a U+2581 space) only together.
    std::vector<int32_t> ids = prompt;
    const size_t prompt_len = decode(m.vocab, ids).size();
    size_t printed = prompt_len;
    if (!common.json) std::fputs(decode(m.vocab, ids).c_str(), stdout);
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> out = generate(m, prompt, o->n, o->s, ad.applied.view_ptr(), [&](int32_t tok) {
      ids.push_back(tok);
      const std::string all = decode(m.vocab, ids);
      const size_t stable = complete_utf8_prefix(all);
      if (!common.json && stable > printed) {
        std::fwrite(all.data() + printed, 1, stable - printed, stdout);
        std::fflush(stdout);
        printed = stable;
      }
      return true;
    }, packed);
    const std::string text = decode(m.vocab, ids).substr(prompt_len);
    if (!common.json && text.size() + prompt_len > printed) std::fputs(text.c_str() + (printed - prompt_len), stdout);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (common.json)
      print_json({{"prompt", o->prompt}, {"text", text}, {"tokens", out}, {"seconds", secs},
                  {"tokens_per_second", out.size() / std::max(secs, 1e-9)}, {"precision", precision_name(precision)},
                  {"pack_seconds", pack_secs}});
    else
      std::fprintf(stderr, "\n[%zu tokens in %.2f s, %.0f tokens/s, %s%s]\n", out.size(), secs,
                   out.size() / std::max(secs, 1e-9), precision_name(precision),
                   packed ? (", weights packed in " + std::to_string((int)(pack_secs * 1000)) + " ms").c_str() : "");
    return 0;
  };
}

}  // namespace heirloom::cli
