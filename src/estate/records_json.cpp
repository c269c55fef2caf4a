// Registry records as JSON, shared by `heirloom estate --json` and the server's estate API.
#include <nlohmann/json.hpp>

#include "heirloom/estate.h"

namespace heirloom::estate {

nlohmann::json to_json(const AdapterRecord& r) {
  return {{"id", r.id}, {"owner", r.owner}, {"kind", r.kind}, {"base", r.base_fingerprint}, {"params_sha256", r.params_sha256},
          {"bytes", r.bytes}, {"created", r.created}, {"added", r.added}, {"recipe", nlohmann::json::parse(r.recipe)},
          {"label", r.label}, {"generation", r.generation}, {"signature", r.signature}};
}

// The ancestry of an adapter as nested JSON: each heir names its parent (the estate) and child (the
// successor's own adapter), as far back as the registry holds them.
nlohmann::json ancestry(const Registry& reg, const AdapterRecord& r, int depth) {
  nlohmann::json j = to_json(r);
  j.erase("signature");
  if (depth > 64) return j;  // lineage is acyclic by construction (content hashes); a bound all the same
  if (const auto l = reg.lineage(r.id)) {
    j["scheme"] = l->scheme, j["params"] = l->params, j["overlap"] = l->overlap, j["regime"] = l->regime;
    const auto side = [&](const std::string& id, const std::string& sha, const std::string& owner) -> nlohmann::json {
      if (!id.empty()) return ancestry(reg, reg.resolve(id), depth + 1);
      return {{"params_sha256", sha}, {"owner", owner}, {"in_registry", false}};
    };
    j["parent"] = side(l->parent, l->parent_sha256, l->parent_owner);
    j["child"] = side(l->child, l->child_sha256, l->child_owner);
  }
  return j;
}

}  // namespace heirloom::estate
