// The "llama" (SentencePiece-style) vocabulary and tokenizer, producing the ids llama.cpp produces.
// Invariants: encode follows llama.cpp's SPM tokenizer: one " " prefix (add_space_prefix) for a
// non-empty text, spaces -> U+2581, split into UTF-8 characters by lead byte as llama.cpp does
// (0x00-0xBF: 1 byte, 0xC0-0xDF: 2, 0xE0-0xEF: 3, 0xF0-0xFF: 4, cut short at the end of the text; so a
// stray continuation byte is 1 character and a bad lead byte swallows what follows, as in llama.cpp),
// merge the adjacent pair that forms the best-scoring token (ties: leftmost) until none is left,
// then spell any non-token piece as byte tokens <0xXX> (falling back to unk_id).
// decode inverts encode for every text that does not itself contain U+2581.
// A "gpt2" vocabulary (byte-level BPE with merges and a named pre-tokenizer) encodes as llama.cpp's BPE
// tokenizer does; see src/text/bpe.h.
// User-defined tokens (type 4) are cut out of the text before either algorithm runs, as llama.cpp does
// without "parse special"; control tokens in the text are plain text. Training a vocabulary is elsewhere.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace heirloom {

namespace gguf {
struct File;
class Writer;
}  // namespace gguf

// tokenizer.ggml.token_type values.
enum TokenKind : int32_t {
  kTokenNormal = 1, kTokenUnknown = 2, kTokenControl = 3, kTokenUserDefined = 4, kTokenUnused = 5,
  kTokenByte = 6,
};

// Hash index over a vocabulary's token strings, built once and shared read-only.
struct TokenIndex {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> ids;  // duplicates: the last id wins, as in llama.cpp
  // Every two-character string that occurs inside some token; no merge can join characters whose
  // pair is absent, which lets encode() cut the text there.
  std::unordered_set<std::string, Hash, std::equal_to<>> pairs;
  std::array<int32_t, 256> byte_ids{};  // token for each byte: <0xXX>, else the 1-byte piece, else unk
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> merge_rank;  // "gpt2": "A B" -> rank
  std::vector<int32_t> user_defined;  // user-defined tokens (type 4), longest first: cut out before encoding
  size_t n_tokens = 0;                  // tokens.size() when built (a cheap staleness check)
  int32_t find(std::string_view piece) const {
    const auto it = ids.find(piece);
    return it == ids.end() ? -1 : it->second;
  }
};

struct Vocab {
  std::string model = "llama";     // tokenizer.ggml.model: "llama" (SentencePiece-style) or "gpt2" (byte-level BPE)
  std::string pre;                 // gpt2: tokenizer.ggml.pre, the pre-tokenizer
  std::vector<std::string> merges; // gpt2: "A B", best first
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // TokenKind values
  int32_t bos_id = 1, eos_id = 2, unk_id = 0;
  bool add_bos = true;
  bool add_space_prefix = true;

  int32_t n_tokens() const { return static_cast<int32_t>(tokens.size()); }
  // The index, built on first use (thread-safe) and rebuilt if the token count changed. After
  // editing token strings in place, call invalidate_index().
  std::shared_ptr<const TokenIndex> index() const;
  void invalidate_index() const { cache_.p.store(nullptr); }

 private:
  // Copies start with an empty cache so an edited copy can never see its original's index.
  struct Cache {
    Cache() = default;
    Cache(const Cache&) {}
    Cache& operator=(const Cache&) {
      p.store(nullptr);
      return *this;
    }
    std::atomic<std::shared_ptr<const TokenIndex>> p;
  };
  mutable Cache cache_;
};

// 259 tokens: 0 <unk> (unknown), 1 <s> (BOS, control), 2 </s> (EOS, control), 3..258 <0x00>..<0xFF>.
Vocab byte_vocab();

// BOS is prepended when add_bos is true AND the vocabulary's add_bos is set (llama.cpp's rule for
// add_special). An empty text gives no other tokens. Texts of 2 GiB or more are an Error.
std::vector<int32_t> encode(const Vocab& vocab, std::string_view text, bool add_bos);
// The first max_tokens ids of encode(vocab, text, add_bos) (all of them when there are fewer). A SentencePiece
// vocabulary without user-defined tokens tokenises only a prefix of the text that ends where no token can
// span (before a space, as encode cuts it): the ids are the same, and a long text costs no more than the prefix.
std::vector<int32_t> encode_first(const Vocab& vocab, std::string_view text, bool add_bos, size_t max_tokens);
// Where encode_first cuts a SentencePiece text: the first byte at or after `from` (a space) that no token can
// span, or npos. encode of the text before it gives the whole text's first ids.
size_t spm_cut(const Vocab& vocab, std::string_view text, size_t from);

// Normal tokens with U+2581 -> space, byte tokens -> their byte (a run of byte tokens spelling U+2581
// also becomes a space, so vocabularies without a "▁" token round-trip), user-defined tokens verbatim,
// control/unknown/unused tokens -> nothing; then one leading space is removed if add_space_prefix.
// An id outside [0, n_tokens) is an Error.
std::string decode(const Vocab& vocab, std::span<const int32_t> ids);
// One token's text for streaming output: decode's mapping for a single id, without the strip.
std::string token_piece(const Vocab& vocab, int32_t id);

void write_vocab(gguf::Writer& w, const Vocab& vocab);
// Validates: model "llama" or "gpt2" (with a known pre-tokenizer), equal-length arrays, ids in range, byte tokens spelled <0xXX>.
Vocab read_vocab(const gguf::File& f);
// The vocabulary of a GGUF file (a model, or a vocabulary-only file such as llama.cpp's ggml-vocab-*.gguf).
Vocab load_vocab(const std::string& path);

}  // namespace heirloom
