// `heirloom tokenize`: a text's token ids under a model's vocabulary (only the vocabulary is read, so
// vocabulary-only GGUF files work too), as llama.cpp's llama-tokenize prints them.
#include <cstdio>

#include "commands.h"
#include "heirloom/text.h"
#include "heirloom/vocab.h"

namespace heirloom::cli {

Action add_tokenize(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("tokenize", "print the token ids of a text under a model's vocabulary (as llama-tokenize)");
  struct Opts { std::string model, text, prompt; bool ids = false, no_bos = false; };
  auto o = std::make_shared<Opts>();
  sub->add_option("--model,--base", o->model, "model or vocabulary-only GGUF; default: the moe-30m base")->check(CLI::ExistingFile);
  auto* text = sub->add_option("--text", o->text, "file whose whole content is tokenized (byte for byte)")->check(CLI::ExistingFile);
  sub->add_option("--prompt,-p", o->prompt, "text to tokenize")->excludes(text);
  sub->add_flag("--ids", o->ids, "print only the ids, space-separated on one line");
  sub->add_flag("--no-bos", o->no_bos, "do not prepend the BOS token (llama.cpp's add_special = false)");
  add_common_flags(*sub, common);
  return [o, &common] {
    o->model = resolve_model(o->model);
    const Vocab v = load_vocab(o->model);
    const std::string s = o->text.empty() ? o->prompt : read_text_file(o->text);
    const std::vector<int32_t> ids = encode(v, s, !o->no_bos);
    if (common.json) {
      nlohmann::json pieces = nlohmann::json::array();
      for (int32_t id : ids) pieces.push_back(v.tokens[id]);
      print_json({{"model", o->model}, {"tokenizer", v.model}, {"ids", ids}, {"pieces", pieces}});
    } else if (o->ids) {
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
    } else {
      for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, v.tokens[id].c_str());
    }
    return 0;
  };
}

}  // namespace heirloom::cli
