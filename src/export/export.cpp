// Checked exports. See include/heirloom/export.h.
#include "heirloom/export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/rng.h"
#include "heirloom/engine.h"
#include "heirloom/error.h"
#include "io/gguf.h"
#include "io/model_file.h"

namespace heirloom {

namespace {

// BOS, then pseudo-random ids: every row of the embedding and head is as likely to be probed as any other.
std::vector<int32_t> probe_tokens(const Model& m) {
  const int T = std::min(m.config.n_ctx, 64);
  std::vector<int32_t> t(T);
  Rng rng(20261124);
  t[0] = m.vocab.bos_id;
  for (int i = 1; i < T; ++i) t[i] = (int32_t)rng.below(m.config.n_vocab);
  return t;
}

std::vector<float> probe_logits(const Model& m, const AdapterView* view, const std::vector<int32_t>& tokens) {
  auto ws = make_workspace();
  forward(m, *ws, Batch{tokens.data(), nullptr, 1, (int)tokens.size()}, one_adapter(view), ForwardOptions{});
  return {logits(*ws), logits(*ws) + tokens.size() * (size_t)m.config.n_vocab};
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (double)std::fabs(a[i] - b[i]));
  return d;
}

double max_abs(const std::vector<float>& a) {
  double d = 0;
  for (float x : a) d = std::max(d, (double)std::fabs(x));
  return d;
}

// Fills the check from the logits; a file that does not hold what was meant is removed.
ExportCheck finish(ExportCheck c, const std::vector<float>& read_back, const std::vector<float>& meant,
                   const std::vector<float>& runtime, double runtime_tolerance) {
  c.stored_diff = max_abs_diff(read_back, meant);
  c.runtime_diff = max_abs_diff(read_back, runtime);
  c.max_logit = max_abs(runtime);
  const bool stored_ok = c.stored_diff <= 1e-5 * (1 + c.max_logit);
  const bool runtime_ok = runtime_tolerance < 0 || c.runtime_diff <= runtime_tolerance * (1 + c.max_logit);
  if (!stored_ok || !runtime_ok) {
    std::remove(c.path.c_str());
    throw Error("the " + c.what + " written to " + c.path + " does not reproduce the in-memory model: largest logit " +
                    "difference " + std::to_string(stored_ok ? c.runtime_diff : c.stored_diff) + " (removed)",
                "report this as a bug, with the base and adapter files");
  }
  return c;
}

}  // namespace

Model round_trip_storage(const Model& m, StorageType storage) {
  Model r = clone_model(m);
  std::vector<uint8_t> bytes;
  for (const auto& s : m.tensors) {
    const TensorType t = stored_type(s, storage);
    if (t == TensorType::F32) continue;
    bytes.resize(row_bytes(t, s.numel));
    quantize_row(t, m.data.data() + s.offset, bytes.data(), s.numel);
    dequantize_row(t, bytes.data(), r.data.data() + s.offset, s.numel);
  }
  return r;
}

ExportCheck export_merged(const Model& base, const std::vector<std::pair<const Adapter*, float>>& adapters,
                          StorageType storage, const std::string& path, const Metadata& meta) {
  const AppliedAdapters merged = apply_adapters(base, adapters, /*merge_all=*/true);
  const Model& m = merged.model(base);
  save_model(m, path, storage, meta);
  ExportCheck c{path, std::string("model ") + storage_name(storage)};
  const std::vector<int32_t> tokens = probe_tokens(base);
  c.probe_tokens = (int)tokens.size();
  const Model read = load_model(path);
  // Run time: full adapters can only be merged, so for them the reference is the merged fp32 model.
  const AppliedAdapters at_run_time = apply_adapters(base, adapters, /*merge_all=*/false);
  const std::vector<float> runtime = probe_logits(at_run_time.model(base), at_run_time.view_ptr(), tokens);
  // f32: merging changes only rounding (a LoRA product folded into the weight), so the logits must agree.
  return finish(c, probe_logits(read, nullptr, tokens), probe_logits(round_trip_storage(m, storage), nullptr, tokens),
                runtime, storage == StorageType::f32 ? 1e-4 : -1);
}

ExportCheck export_lora(const Model& base, const Adapter& a, StorageType storage, const std::string& path) {
  if (a.kind != AdapterKind::lora)
    throw Error(std::string("only a LoRA adapter can be written as a llama.cpp LoRA (this one is ") + kind_name(a.kind) + ")",
                a.kind == AdapterKind::steer ? "write it with --control-vector" : "merge it into a model with --out");
  if (a.routed()) throw Error("a concatenated heir routes between two adapters at run time; llama.cpp cannot", "export one branch's adapter");
  if (storage != StorageType::f32 && storage != StorageType::f16)
    throw Error(std::string("LoRA adapters are written as f32 or f16, not ") + storage_name(storage), "use --type f16");
  save_adapter(a, base.config, path, storage);
  ExportCheck c{path, "LoRA adapter"};
  const std::vector<int32_t> tokens = probe_tokens(base);
  c.probe_tokens = (int)tokens.size();
  const Adapter read = load_adapter(path, base);
  const AdapterView read_view = read.view(base.config), view = a.view(base.config);
  const std::vector<float> runtime = probe_logits(base, &view, tokens);
  // f16 rounds A and B; an adapter that came from an f16 file survives that unchanged.
  Adapter rounded = a;
  if (storage == StorageType::f16)
    for (float& x : rounded.params) x = f16_to_f32(f32_to_f16(x));
  const AdapterView rounded_view = rounded.view(base.config);
  return finish(c, probe_logits(base, &read_view, tokens), probe_logits(base, &rounded_view, tokens), runtime,
                storage == StorageType::f32 ? 1e-6 : -1);
}

ExportCheck export_control_vector(const Model& base, const Adapter& a, const std::string& path) {
  if (a.kind == AdapterKind::steer)
    for (int c = 0; c < base.config.n_embd; ++c)
      if (a.params[c] != 0.f)
        throw Error("this steering adapter moves the residual stream after block 0, which a llama.cpp control vector "
                    "cannot express", "merge it into a model with --out instead");
  save_control_vector(a, base.config, path);
  ExportCheck c{path, "control vector"};
  const std::vector<int32_t> tokens = probe_tokens(base);
  c.probe_tokens = (int)tokens.size();
  // Read it back as llama.cpp does: direction.N is added after block N.
  const gguf::File f = gguf::read_file(path);
  if (f.get_string("general.architecture") != "controlvector") throw Error(path + ": not a control vector");
  Adapter read = make_adapter(base, AdapterKind::steer);
  const int C = base.config.n_embd;
  for (const gguf::TensorInfo& t : f.tensors) {
    int layer = -1;
    if (std::sscanf(t.name.c_str(), "direction.%d", &layer) != 1 || layer < 1 || layer >= base.config.n_layer ||
        t.ne != std::vector<int64_t>{C})
      throw Error(path + ": unexpected tensor '" + t.name + "'");
    dequantize_row(t.type, f.tensor_data(t), read.params.data() + (int64_t)layer * C, C);
  }
  const AdapterView read_view = read.view(base.config), view = a.view(base.config);
  const std::vector<float> runtime = probe_logits(base, &view, tokens);
  return finish(c, probe_logits(base, &read_view, tokens), runtime, runtime, 1e-6);
}

}  // namespace heirloom
