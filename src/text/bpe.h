// Byte-level BPE ("gpt2" vocabularies in GGUF) as llama.cpp tokenizes: the text is cut by the
// pre-tokenizer's regexes (applied in turn, each splitting the pieces of the one before; the text between
// matches stays a piece of its own), each piece's bytes are spelled as GPT-2's printable code points, and
// adjacent symbols merge by rank (lowest first, leftmost on ties) until no listed merge applies. A merged
// symbol that is not a token falls back to its single bytes, as llama.cpp does.
// Pre-tokenizers, by llama.cpp's names (tokenizer.ggml.pre): "gpt-2" (and the names llama.cpp treats as it,
// e.g. "phi-2"), "llama3" / "llama-bpe" and its other names (whole pieces that are tokens skip merging), "smollm".
// Not here: splitting special tokens out of the text before the regexes (llama.cpp does that only when
// asked to parse special tokens).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "heirloom/vocab.h"

namespace heirloom::bpe {

// "gpt-2", "llama3" or "smollm" for a name llama.cpp gives that pre-tokenizer type; "" otherwise.
std::string pretokenizer_kind(const std::string& pre);
bool pretokenizer_supported(const std::string& pre);
inline constexpr const char* kKnownPretokenizers =
    "heirloom knows llama.cpp's gpt-2 (also phi-2, ...), llama3 (llama-bpe, llama-v3, ...) and smollm pre-tokenizers";
// The pieces of text, in order; their concatenation is the text. Error for an unknown pre-tokenizer.
std::vector<std::string> pretokenize(std::string_view text, const std::string& pre);
// Each byte as its GPT-2 code point, in UTF-8 (printable bytes stand for themselves).
std::string bytes_to_symbols(std::string_view raw);
// The inverse, appended to out: code points outside the byte map are copied as their UTF-8.
void symbols_to_bytes(std::string_view symbols, std::string& out);
// Appends the ids of text (no BOS) to out.
void encode(const Vocab& v, const TokenIndex& idx, std::string_view text, std::vector<int32_t>& out);

}  // namespace heirloom::bpe
