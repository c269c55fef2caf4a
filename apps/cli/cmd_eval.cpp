// `heirloom eval`: perplexity of a model on a text file.
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/eval.h"
#include "heirloom/inherit.h"
#include "heirloom/model.h"
#include "heirloom/text.h"

namespace heirloom::cli {

Action add_eval(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("eval", "perplexity of a model on a text file");
  struct Opts { std::string model, text, corpus, corpus_dir, protocol = "sliding"; int ctx = 0, batch = 4; bool unigram = false; std::vector<std::string> adapters; };
  auto o = std::make_shared<Opts>();
  sub->add_option("--model,--base", o->model, "model (GGUF); default: the moe-30m base under models/ or the cache")->check(CLI::ExistingFile);
  auto* text = sub->add_option("--text", o->text, "text file to score")->check(CLI::ExistingFile);
  sub->add_option("--corpus", o->corpus, "score a built corpus's held-out split instead (e.g. general, kjv)")->excludes(text);
  sub->add_option("--corpus-dir", o->corpus_dir, "built corpus directory (default: " + default_corpus_dir() + ")");
  sub->add_flag("--unigram", o->unigram, "also report the unigram baseline (token frequencies of the corpus's training split)");
  sub->add_option("--protocol", o->protocol, "sliding (half-window stride) or llama (llama.cpp's perplexity)")
      ->check(CLI::IsMember({"sliding", "llama"}))->capture_default_str();
  sub->add_option("--ctx", o->ctx, "window length in tokens (default: the model's context)");
  sub->add_option("--batch", o->batch, "windows per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
  add_adapter_option(*sub, o->adapters);
  add_common_flags(*sub, common);
  return [o, &common] {
    o->model = resolve_model(o->model);
    const Model base = load_model(o->model);
    const LoadedAdapters ad = load_adapters(base, o->adapters);
    const Model& m = ad.applied.model(base);
    const AdapterView* view = ad.applied.view_ptr();
    if (o->text.empty() && o->corpus.empty()) throw Error("eval needs --text FILE or --corpus NAME");
    const CorpusDir cd{o->corpus_dir.empty() ? default_corpus_dir() : o->corpus_dir};
    if (!o->corpus.empty()) o->text = cd.heldout_path(o->corpus);
    std::string text = read_text_for_eval(o->text, o->protocol == "llama");
    const std::vector<int32_t> toks = encode(m.vocab, text, true);
    const int ctx = o->ctx > 0 ? o->ctx : m.config.n_ctx;
    PerplexityResult r;
    std::vector<int64_t> routed;
    if (ad.routed) {
      if (o->protocol == "llama") throw Error("a concatenated heir is scored with the sliding protocol only", "drop --protocol llama");
      const inherit::AdapterPerplexity rp = inherit::adapter_perplexity(base, ad.routed, toks, ctx);
      r = rp.result;
      routed = rp.routed;
    } else {
      r = o->protocol == "llama" ? perplexity_llama(m, toks, ctx, view, o->batch) : perplexity_sliding(m, toks, ctx, view, o->batch);
    }
    double unigram = 0;
    if (o->unigram) {
      if (o->corpus.empty()) throw Error("--unigram needs --corpus (the baseline counts that corpus's training split)");
      unigram = perplexity_unigram(encode(m.vocab, read_text_file(cd.train_path(o->corpus)), true), toks, m.config.n_vocab).ppl();
    }
    if (common.json) {
      nlohmann::json j = {{"model", o->model}, {"fingerprint", base.fingerprint()}, {"text", o->text}, {"protocol", o->protocol}, {"ctx", ctx},
                          {"tokens", toks.size()}, {"scored", r.n_scored}, {"windows", r.n_windows},
                          {"mean_nll", r.mean_nll()}, {"ppl", r.ppl()}, {"adapters", ad.names}};
      if (o->unigram) j["unigram_ppl"] = unigram;
      if (ad.routed) j["routed_targets"] = routed;
      print_json(j);
    } else {
      if (o->unigram) std::printf("unigram baseline (token frequencies of %s/train.txt) on the same text: perplexity %.4f\n", o->corpus.c_str(), unigram);
      for (const auto& name : ad.names) std::printf("with adapter %s\n", name.c_str());
      if (ad.routed) {
        std::printf("concatenated heir: each token scored by the branch with lower loss on the %d tokens before it;", ctx);
        for (size_t b = 0; b < routed.size(); ++b) std::printf(" branch %zu (%s) %lld", b, ad.routed->branches[b].info.owner.c_str(), (long long)routed[b]);
        std::printf("\n");
      }
      std::printf("%s on %s: perplexity %.4f (%s protocol, ctx %d, %lld tokens scored in %d windows)\n",
                  o->model.c_str(), o->text.c_str(), r.ppl(), o->protocol.c_str(), ctx, (long long)r.n_scored,
                  r.n_windows);
    }
    return 0;
  };
}

}  // namespace heirloom::cli
