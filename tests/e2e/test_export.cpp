// Exports for llama.cpp: Q8_0 / F16 / F32 models, LoRA adapters (3-D expert tensors included) and control
// vectors are read back and give the logits of the in-memory model with the adapter applied.
#include <gtest/gtest.h>

#include <filesystem>

#include "../unit/adapter_fixtures.h"
#include "heirloom/error.h"
#include "heirloom/export.h"
#include "io/gguf.h"

namespace heirloom {
namespace {

using fixtures::noisy_adapter;
using fixtures::tiny_random_base;

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("heirloom_export_" + name)).string();
}

TEST(Export, Q8_0ModelKeepsNormsInF32AndReadsBackAsQuantised) {
  const Model& base = tiny_random_base();
  const std::string path = tmp_path("q8.gguf");
  save_model(base, path, StorageType::q8_0);
  const gguf::File f = gguf::read_file(path);
  EXPECT_EQ(f.get_u32("general.file_type"), 7u);
  EXPECT_EQ(f.get_u32("general.quantization_version"), 2u);  // llama-quantize writes it
  for (const gguf::TensorInfo& t : f.tensors) {  // norms and the MoE router stay F32, as llama-quantize leaves them
    const bool f32 = t.ne.size() == 1 || t.name.find("ffn_gate_inp") != std::string::npos;
    EXPECT_EQ(t.type, f32 ? TensorType::F32 : TensorType::Q8_0) << t.name;
  }
  const Model read = load_model(path), meant = round_trip_storage(base, StorageType::q8_0);
  ASSERT_EQ(read.data.size(), meant.data.size());
  double worst = 0;
  for (size_t i = 0; i < read.data.size(); ++i) {
    ASSERT_EQ(read.data[i], meant.data[i]) << i;
    worst = std::max(worst, (double)std::fabs(read.data[i] - base.data[i]));
  }
  EXPECT_GT(worst, 0.0);     // Q8_0 does round
  EXPECT_LT(worst, 2e-3);    // weights ~N(0, 0.02): a step of amax/127 per block
  std::filesystem::remove(path);
}

TEST(Export, MergedModelsMatchTheAdapterAppliedAtRunTime) {
  const Model& base = tiny_random_base();
  const Adapter norm = noisy_adapter(AdapterKind::norm, 5);
  LoraShape ls;
  ls.targets = {true, true, true, true, true, true, true, true};
  const Adapter lora = noisy_adapter(AdapterKind::lora, 6, ls);
  for (StorageType st : {StorageType::f32, StorageType::f16, StorageType::bf16, StorageType::q8_0}) {
    SCOPED_TRACE(storage_name(st));
    const std::string path = tmp_path(std::string("merged_") + storage_name(st) + ".gguf");
    const ExportCheck c = export_merged(base, {{&norm, 1.f}, {&lora, 0.5f}}, st, path);
    EXPECT_EQ(c.stored_diff, 0.0);
    EXPECT_GT(c.max_logit, 0.0);
    if (st == StorageType::f32) EXPECT_LT(c.runtime_diff, 1e-4 * (1 + c.max_logit));
    else EXPECT_GT(c.runtime_diff, 0.0);  // rounding the weights must show
    EXPECT_TRUE(std::filesystem::exists(path));
    std::filesystem::remove(path);
  }
}

TEST(Export, LoraFileIsLlamaCppsLayoutWithThreeDimensionalExperts) {
  const Model& base = tiny_random_base();
  const ModelConfig& c = base.config;
  LoraShape ls;
  ls.targets = {true, false, true, false, true, true, false, true};
  const Adapter lora = noisy_adapter(AdapterKind::lora, 7, ls);
  const std::string path = tmp_path("lora.gguf");
  const ExportCheck check = export_lora(base, lora, StorageType::f32, path);
  EXPECT_EQ(check.stored_diff, 0.0);
  EXPECT_LE(check.runtime_diff, 1e-6 * (1 + check.max_logit));
  const gguf::File f = gguf::read_file(path);
  EXPECT_EQ(f.get_string("general.type"), "adapter");
  EXPECT_EQ(f.get_string("adapter.type"), "lora");
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  const int R = lora.lora.rank, E = c.n_expert;
  const gguf::TensorInfo* q = f.find_tensor("blk.0.attn_q.weight.lora_a");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->ne, (std::vector<int64_t>{c.n_embd, R}));
  const gguf::TensorInfo* down_b = f.find_tensor("blk.1.ffn_down_exps.weight.lora_b");
  ASSERT_NE(down_b, nullptr);
  EXPECT_EQ(down_b->ne, (std::vector<int64_t>{R, c.n_embd, E}));
  const gguf::TensorInfo* gate_a = f.find_tensor("blk.1.ffn_gate_exps.weight.lora_a");
  ASSERT_NE(gate_a, nullptr);
  EXPECT_EQ(gate_a->ne, (std::vector<int64_t>{c.n_embd, R, E}));
  EXPECT_EQ(f.find_tensor("blk.0.attn_k.weight.lora_a"), nullptr);
  std::filesystem::remove(path);
  EXPECT_THROW(export_lora(base, noisy_adapter(AdapterKind::norm, 8), StorageType::f16, path), Error);
  EXPECT_THROW(export_lora(base, lora, StorageType::q8_0, path), Error);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Export, ControlVectorReadsBackAsTheSteeringAdapter) {
  const Model& base = tiny_random_base();
  Adapter steer = noisy_adapter(AdapterKind::steer, 9);
  const std::string path = tmp_path("cvec.gguf");
  EXPECT_THROW(export_control_vector(base, steer, path), Error);  // block 0's vector is not zero
  EXPECT_FALSE(std::filesystem::exists(path));
  std::fill_n(steer.params.begin(), base.config.n_embd, 0.f);
  const ExportCheck c = export_control_vector(base, steer, path);
  EXPECT_EQ(c.stored_diff, 0.0);
  EXPECT_EQ(c.runtime_diff, 0.0);
  const gguf::File f = gguf::read_file(path);
  EXPECT_EQ(f.get_i32("controlvector.layer_count"), base.config.n_layer - 1);
  EXPECT_EQ(f.tensors.size(), (size_t)base.config.n_layer - 1);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace heirloom
