// `--adapter FILE[:SCALE]` (repeatable), shared by eval and generate.
#include <cstdlib>

#include "commands.h"
#include "heirloom/error.h"

namespace heirloom::cli {

void add_adapter_option(CLI::App& sub, std::vector<std::string>& specs) {
  sub.add_option("--adapter", specs,
                 "apply an adapter made by `heirloom personalize`, optionally scaled (FILE or FILE:SCALE); repeat to combine");
}

LoadedAdapters load_adapters(const Model& base, const std::vector<std::string>& specs) {
  LoadedAdapters out;
  out.adapters.reserve(specs.size());  // pointers into it are kept below
  std::vector<std::pair<const Adapter*, float>> list;
  for (const std::string& spec : specs) {
    std::string path = spec;
    float scale = 1.f;
    // FILE:SCALE, where SCALE parses as a number (a path may itself contain ':').
    if (const size_t colon = spec.rfind(':'); colon != std::string::npos && colon + 1 < spec.size()) {
      char* end = nullptr;
      const float s = std::strtof(spec.c_str() + colon + 1, &end);
      if (end && *end == '\0') path = spec.substr(0, colon), scale = s;
    }
    out.adapters.push_back(load_adapter(path, base));
    list.emplace_back(&out.adapters.back(), scale);
    out.scales.push_back(scale);
    out.names.push_back(path + (scale != 1.f ? " x" + std::to_string(scale) : ""));
  }
  for (const Adapter& a : out.adapters)
    if (a.routed()) {
      if (out.adapters.size() > 1)
        throw Error("a concatenated heir routes between its own adapters and cannot be combined with others",
                    "pass it as the only --adapter");
      out.routed = &a;
      return out;
    }
  out.applied = apply_adapters(base, list);
  return out;
}

}  // namespace heirloom::cli
