// Writes the fuzzer's starting corpus into a directory: micro models (dense and MoE, tied and untied output,
// grouped-query attention) in every tensor type the reader takes, and a file of keys only. Small on purpose:
// libFuzzer mutates small inputs far better than megabytes. Usage: heirloom_fuzz_seeds DIR
#include <cstdio>
#include <string>

#include "heirloom/error.h"
#include "heirloom/model.h"
#include "heirloom/vocab.h"
#include "io/gguf.h"

using namespace heirloom;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  try {
    ModelConfig c;
    c.preset = "micro";
    c.n_vocab = 259, c.n_embd = 32, c.n_layer = 1, c.n_head = 2, c.n_head_kv = 1, c.n_ff = 32, c.n_ctx = 16;
    for (int moe = 0; moe < 2; ++moe) {
      c.n_expert = moe ? 2 : 0, c.n_expert_used = moe ? 1 : 0;
      c.tied_output = moe;  // one of each
      const Model m = init_model(c, byte_vocab(), 7);
      for (StorageType st : {StorageType::f32, StorageType::f16, StorageType::bf16, StorageType::q8_0})
        save_model(m, dir + "/micro-" + (moe ? "moe-tied-" : "dense-") + storage_name(st) + ".gguf", st);
    }
    gguf::Writer keys;  // header and key-values only: where most of the parsing is
    keys.set_string("general.architecture", "llama");
    keys.set_u32("llama.context_length", 16);
    keys.set_f32("llama.rope.freq_base", 10000.f);
    keys.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
    keys.set_f32_array("tokenizer.ggml.scores", {0.f, 0.f, 0.f, -1.f});
    keys.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1});
    keys.set_bool("tokenizer.ggml.add_bos_token", true);
    keys.set_u64("general.size", 1);
    keys.set_f64("general.weight", 0.5);
    keys.write(dir + "/keys-only.gguf");
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
