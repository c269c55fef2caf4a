// `heirloom eval`: perplexity of a model on a text file.
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "heirloom/error.h"
#include "heirloom/eval.h"
#include "heirloom/model.h"
#include "heirloom/text.h"

namespace heirloom::cli {

Action add_eval(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("eval", "perplexity of a model on a text file");
  struct Opts { std::string model, text, protocol = "sliding"; int ctx = 0, batch = 4; };
  auto o = std::make_shared<Opts>();
  sub->add_option("--model", o->model, "model (GGUF)")->required()->check(CLI::ExistingFile);
  sub->add_option("--text", o->text, "text file to score")->required()->check(CLI::ExistingFile);
  sub->add_option("--protocol", o->protocol, "sliding (half-window stride) or llama (llama.cpp's perplexity)")
      ->check(CLI::IsMember({"sliding", "llama"}))->capture_default_str();
  sub->add_option("--ctx", o->ctx, "window length in tokens (default: the model's context)");
  sub->add_option("--batch", o->batch, "windows per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
  add_common_flags(*sub, common);
  return [o, &common] {
    const Model m = load_model(o->model);
    std::string text = read_text_for_eval(o->text, o->protocol == "llama");
    const std::vector<int32_t> toks = encode(m.vocab, text, true);
    const int ctx = o->ctx > 0 ? o->ctx : m.config.n_ctx;
    const PerplexityResult r = o->protocol == "llama" ? perplexity_llama(m, toks, ctx, nullptr, o->batch)
                                                      : perplexity_sliding(m, toks, ctx, nullptr, o->batch);
    if (common.json)
      print_json({{"model", o->model}, {"text", o->text}, {"protocol", o->protocol}, {"ctx", ctx},
                  {"tokens", toks.size()}, {"scored", r.n_scored}, {"windows", r.n_windows},
                  {"mean_nll", r.mean_nll()}, {"ppl", r.ppl()}});
    else
      std::printf("%s on %s: perplexity %.4f (%s protocol, ctx %d, %lld tokens scored in %d windows)\n",
                  o->model.c_str(), o->text.c_str(), r.ppl(), o->protocol.c_str(), ctx, (long long)r.n_scored,
                  r.n_windows);
    return 0;
  };
}

}  // namespace heirloom::cli
