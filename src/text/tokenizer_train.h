// Training the "llama" vocabulary with SentencePiece (libsentencepiece from Debian), configured so that
// llama.cpp's encoding algorithm — ours, in vocab.cpp — reproduces SentencePiece's ids: BPE, byte
// fallback, identity normalisation, a dummy-prefix space, no whitespace collapsing (shared/GGUF-NOTES.md).
// The SentencePiece model itself is kept only as the reference our tokenizer is tested against.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "heirloom/vocab.h"

namespace heirloom {

struct TokenizerTrainOptions {
  int vocab_size = 8192;
  int threads = 1;  // SentencePiece's trainer threads (1 keeps the result independent of the machine)
  int max_sentence_length = 1 << 16;  // bytes; longer lines are cut by the caller, not skipped silently
};

struct TrainedTokenizer {
  Vocab vocab;
  std::string spm_model;  // SentencePiece's serialized ModelProto
};

// input_path: text, one training "sentence" per line.
TrainedTokenizer train_tokenizer(const std::string& input_path, const TokenizerTrainOptions& opt);
Vocab vocab_from_spm(const std::string& spm_model);

// SentencePiece's own encoder for a serialized model: the reference for tests.
class SpmReference {
 public:
  explicit SpmReference(const std::string& spm_model);
  ~SpmReference();
  std::vector<int32_t> encode(std::string_view text) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace heirloom
