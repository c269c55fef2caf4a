// `heirloom export`: what heirloom trains, in the files llama.cpp reads — a base with adapters merged into its
// weights (F32, F16 or Q8_0; how a norm or full adapter reaches llama.cpp, which skips norm tensors in
// adapters), a LoRA adapter as a llama.cpp LoRA, a steering adapter as a control vector. Every export is
// read back and checked against the in-memory model (include/heirloom/export.h).
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "heirloom/error.h"
#include "heirloom/export.h"
#include "heirloom/model.h"

namespace heirloom::cli {

Action add_export(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("export", "write a model with adapters merged (F32/F16/Q8_0), a LoRA adapter for llama.cpp's --lora, or a steering adapter as a control vector; each read back and checked");
  struct Opts { std::string base, out, lora, cvec, type; std::vector<std::string> adapters; bool f16 = false; };
  auto o = std::make_shared<Opts>();
  sub->add_option("--base,--model", o->base, "base model (GGUF); default: the moe-30m base under models/ or the cache");
  add_adapter_option(*sub, o->adapters);
  auto* out = sub->add_option("--out", o->out, "write a model with the adapters merged into its weights (none: a plain conversion)");
  auto* lora = sub->add_option("--lora", o->lora, "instead: write the (single) LoRA --adapter as a llama.cpp LoRA (llama-cli --lora FILE)");
  auto* cvec = sub->add_option("--control-vector", o->cvec, "instead: write the (single) steering --adapter as a llama.cpp control vector (--control-vector FILE)");
  out->excludes(lora)->excludes(cvec);
  lora->excludes(cvec);
  sub->add_option("--type", o->type, "tensor type of matrices: f32, f16, bf16 or q8_0 (models; default f32), f32 or f16 (LoRA; default f16)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  sub->add_flag("--f16", o->f16, "same as --type f16");
  add_common_flags(*sub, common);
  return [o, &common] {
    if (o->out.empty() && o->lora.empty() && o->cvec.empty())
      throw Error("export needs one of --out FILE (a model), --lora FILE or --control-vector FILE");
    if (o->f16 && !o->type.empty() && o->type != "f16") throw Error("--f16 and --type " + o->type + " disagree");
    if (o->f16) o->type = "f16";
    if ((!o->lora.empty() || !o->cvec.empty()) && o->adapters.size() != 1)
      throw Error(std::string(o->lora.empty() ? "--control-vector" : "--lora") + " writes exactly one --adapter, found " +
                  std::to_string(o->adapters.size()));
    const std::string base_path = resolve_model(o->base);
    const Model base = load_model(base_path);
    LoadedAdapters ad = load_adapters(base, o->adapters);
    ExportCheck c;
    if (!o->cvec.empty()) {
      c = export_control_vector(base, ad.adapters[0], o->cvec);
    } else if (!o->lora.empty()) {
      c = export_lora(base, ad.adapters[0], parse_storage(o->type.empty() ? "f16" : o->type), o->lora);
    } else {
      std::vector<std::pair<const Adapter*, float>> list;
      for (size_t i = 0; i < ad.adapters.size(); ++i) list.emplace_back(&ad.adapters[i], ad.scales[i]);
      c = export_merged(base, list, parse_storage(o->type.empty() ? "f32" : o->type), o->out,
                        {{"merged_from", base.fingerprint()}, {"merged_adapters", std::to_string(list.size())}});
    }
    const auto bytes = std::filesystem::file_size(c.path);
    if (common.json) {
      print_json({{"base", base_path}, {"adapters", ad.names}, {"out", c.path}, {"what", c.what}, {"bytes", bytes},
                  {"probe_tokens", c.probe_tokens}, {"stored_max_abs_diff", c.stored_diff},
                  {"runtime_max_abs_diff", c.runtime_diff}, {"max_abs_logit", c.max_logit}});
    } else {
      std::printf("wrote %s: %s, %llu bytes (%zu adapter(s) on %s)\n", c.path.c_str(), c.what.c_str(),
                  (unsigned long long)bytes, ad.adapters.size(), base_path.c_str());
      std::printf("read back: the logits on %d probe tokens equal what was meant to be stored (largest difference %.3g)\n",
                  c.probe_tokens, c.stored_diff);
      std::printf("against the base with the adapters applied at run time in fp32: largest logit difference %.3g "
                  "(largest logit %.3g)\n", c.runtime_diff, c.max_logit);
    }
    return 0;
  };
}

}  // namespace heirloom::cli
