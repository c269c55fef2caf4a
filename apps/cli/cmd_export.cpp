// `heirloom export`: a base with adapters merged into its weights, as a plain model file llama.cpp can
// load (llama.cpp ignores norm tensors in adapters, so this is how a norm adapter reaches it), or a
// steering adapter as a llama.cpp control vector.
#include <cstdio>

#include "commands.h"
#include "heirloom/error.h"
#include "heirloom/model.h"

namespace heirloom::cli {

Action add_export(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("export", "merge adapters into a standalone model file (none: convert, e.g. to F16), or write a steering adapter as a llama.cpp control vector");
  struct Opts { std::string base, out, cvec; std::vector<std::string> adapters; bool f16 = false; };
  auto o = std::make_shared<Opts>();
  sub->add_option("--base,--model", o->base, "base model (GGUF); default: the moe-30m base under models/ or the cache");
  add_adapter_option(*sub, o->adapters);
  sub->add_option("--out", o->out, "merged model to write (GGUF, llama architecture)");
  sub->add_option("--control-vector", o->cvec, "instead: write the (single, steering) --adapter as a llama.cpp control vector here");
  sub->add_flag("--f16", o->f16, "store matrices as F16");
  add_common_flags(*sub, common);
  return [o, &common] {
    if (o->out.empty() == o->cvec.empty()) throw Error("export needs exactly one of --out FILE or --control-vector FILE");
    if (o->adapters.empty() && !o->cvec.empty()) throw Error("--control-vector needs the steering --adapter to write");
    const std::string base_path = resolve_model(o->base);
    const Model base = load_model(base_path);
    LoadedAdapters ad = load_adapters(base, o->adapters);
    if (!o->cvec.empty()) {
      if (ad.adapters.size() != 1) throw Error("--control-vector takes exactly one steering --adapter");
      save_control_vector(ad.adapters[0], base.config, o->cvec);
    } else {
      std::vector<std::pair<const Adapter*, float>> list;
      for (size_t i = 0; i < ad.adapters.size(); ++i) list.emplace_back(&ad.adapters[i], ad.scales[i]);
      // Without adapters this is a plain copy: how an F32 base becomes the F16 file we ship (--f16).
      const AppliedAdapters merged = apply_adapters(base, list, /*merge_all=*/true);
      save_model(merged.merged ? *merged.merged : base, o->out, o->f16 ? StorageType::f16 : StorageType::f32,
                 {{"merged_from", base.fingerprint()}, {"merged_adapters", std::to_string(list.size())}});
    }
    const std::string written = o->out.empty() ? o->cvec : o->out;
    if (common.json) print_json({{"base", base_path}, {"adapters", ad.names}, {"out", written}});
    else std::printf("wrote %s (%zu adapter(s) on %s)\n", written.c_str(), ad.adapters.size(), base_path.c_str());
    return 0;
  };
}

}  // namespace heirloom::cli
