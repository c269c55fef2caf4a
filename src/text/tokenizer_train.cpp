// SentencePiece training and the reference encoder. See tokenizer_train.h.
#include "text/tokenizer_train.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "heirloom/error.h"

namespace heirloom {

namespace {
// Feeds the training text line by line. Passing lines (not a path) keeps the file's path out of the
// saved model, so the model is byte-identical wherever the corpus is built.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::string& path) : in_(path) { Next(); }
  bool done() const override { return done_; }
  void Next() override { done_ = !std::getline(in_, line_); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
};
}  // namespace

TrainedTokenizer train_tokenizer(const std::string& input_path, const TokenizerTrainOptions& opt) {
  if (!std::filesystem::exists(input_path)) throw Error("tokenizer training text '" + input_path + "' does not exist");
  LineIterator lines(input_path);
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(opt.vocab_size)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "true"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "false"},
      {"character_coverage", "0.9999"},
      {"max_sentence_length", std::to_string(opt.max_sentence_length)},
      {"input_sentence_size", "0"},  // all lines: no random sample, so the result is reproducible
      {"shuffle_input_sentence", "false"},
      {"num_threads", std::to_string(opt.threads)},
      {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "-1"},
      {"minloglevel", "2"},
  };
  TrainedTokenizer t;
  const auto st = sentencepiece::SentencePieceTrainer::Train(args, &lines, &t.spm_model);
  if (!st.ok()) throw Error("SentencePiece training failed: " + st.ToString(), "check the training text");
  t.vocab = vocab_from_spm(t.spm_model);
  return t;
}

Vocab vocab_from_spm(const std::string& spm_model) {
  sentencepiece::SentencePieceProcessor sp;
  const auto st = sp.LoadFromSerializedProto(spm_model);
  if (!st.ok()) throw Error("not a SentencePiece model: " + st.ToString());
  Vocab v;
  const int n = sp.GetPieceSize();
  v.tokens.reserve(n);
  for (int i = 0; i < n; ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
    v.types.push_back(sp.IsUnknown(i)   ? kTokenUnknown
                      : sp.IsControl(i) ? kTokenControl
                      : sp.IsByte(i)    ? kTokenByte
                      : sp.IsUnused(i)  ? kTokenUnused
                                        : kTokenNormal);
  }
  v.bos_id = sp.bos_id();
  v.eos_id = sp.eos_id();
  v.unk_id = sp.unk_id();
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

struct SpmReference::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SpmReference::SpmReference(const std::string& spm_model) : impl_(new Impl) {
  const auto st = impl_->sp.LoadFromSerializedProto(spm_model);
  if (!st.ok()) {
    delete impl_;
    throw Error("not a SentencePiece model: " + st.ToString());
  }
}
SpmReference::~SpmReference() { delete impl_; }

std::vector<int32_t> SpmReference::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto st = impl_->sp.Encode(std::string(text), &ids);
  if (!st.ok()) throw Error("SentencePiece encode failed: " + st.ToString());
  return {ids.begin(), ids.end()};
}

}  // namespace heirloom
