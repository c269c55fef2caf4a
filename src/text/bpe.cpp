// Byte-level BPE and its pre-tokenizers (PCRE2 with Unicode properties). See bpe.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/bpe.h"

#include <pcre2.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "heirloom/error.h"
#include "text/clean.h"

namespace heirloom::bpe {

namespace {

constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// Llama 3's regex with its case-insensitive contractions spelled out, as llama.cpp runs it.
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

std::vector<const char*> regexes_for(const std::string& pre) {
  const std::string k = pretokenizer_kind(pre);
  if (k == "gpt-2") return {kGpt2};
  if (k == "llama3") return {kLlama3};
  if (k == "smollm") return {R"(\p{N})", kGpt2};
  return {};
}

struct Code {
  std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> re{nullptr, pcre2_code_free};
};

// Compiled once per pattern for the process; matching data is per call (thread-safe).
const pcre2_code* compiled(const char* pattern) {
  static std::mutex mu;
  static std::unordered_map<const char*, Code> cache;
  std::lock_guard<std::mutex> lock(mu);
  Code& c = cache[pattern];
  if (!c.re) {
    int err = 0;
    PCRE2_SIZE at = 0;
    c.re.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, nullptr));
    if (!c.re) throw Error("internal: a pre-tokenizer regex does not compile (PCRE2 error " + std::to_string(err) + ")");
  }
  return c.re.get();
}

// Cuts each piece at the pattern's matches: gap, match, gap, match, ..., rest.
std::vector<std::string> split(const std::vector<std::string>& pieces, const char* pattern) {
  const pcre2_code* re = compiled(pattern);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(re, nullptr), pcre2_match_data_free);
  std::vector<std::string> out;
  for (const std::string& p : pieces) {
    const auto* s = reinterpret_cast<PCRE2_SPTR>(p.data());
    size_t start = 0, pos = 0;
    while (pos <= p.size()) {
      const int rc = pcre2_match(re, s, p.size(), pos, 0, md.get(), nullptr);
      if (rc < 0) break;  // no match (or invalid UTF-8 with nothing matchable after it)
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      if (ov[1] == ov[0]) {  // an empty match cuts nothing: step over one character
        if (ov[0] >= p.size()) break;
        pos = ov[0] + std::min(utf8_lead_len(p[ov[0]]), p.size() - ov[0]);
        continue;
      }
      if (ov[0] > start) out.emplace_back(p, start, ov[0] - start);
      out.emplace_back(p, ov[0], ov[1] - ov[0]);
      start = pos = ov[1];
    }
    if (start < p.size()) out.emplace_back(p, start);
  }
  return out;
}

// GPT-2's byte ↔ printable code point map.
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::unordered_map<uint32_t, uint8_t> to_byte;
  ByteMap() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? (uint32_t)b : next++;
      to_byte[to_cp[b]] = (uint8_t)b;
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

// The names llama.cpp (llama-vocab.cpp) maps to each of its pre-tokenizer types that heirloom implements.
std::string pretokenizer_kind(const std::string& pre) {
  if (one_of(pre, {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
                   "modern-bert"}))
    return "gpt-2";
  if (one_of(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"}))
    return "llama3";
  if (pre == "smollm") return "smollm";
  return "";
}

bool pretokenizer_supported(const std::string& pre) { return !pretokenizer_kind(pre).empty(); }

std::vector<std::string> pretokenize(std::string_view text, const std::string& pre) {
  const std::vector<const char*> res = regexes_for(pre);
  if (res.empty())
    throw Error("pre-tokenizer '" + pre + "' is not supported", kKnownPretokenizers);
  std::vector<std::string> pieces;
  if (!text.empty()) pieces.emplace_back(text);
  for (const char* re : res) pieces = split(pieces, re);
  return pieces;
}

std::string bytes_to_symbols(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (const char c : raw) append_utf8(out, byte_map().to_cp[(unsigned char)c]);
  return out;
}

void symbols_to_bytes(std::string_view s, std::string& out) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(utf8_lead_len(s[i]), s.size() - i);
    uint32_t cp = n == 1 ? (unsigned char)s[i] : (unsigned char)s[i] & (0xFF >> (n + 1));
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
    const auto it = byte_map().to_byte.find(cp);
    if (it != byte_map().to_byte.end()) out += (char)it->second;
    else out.append(s.substr(i, n));
    i += n;
  }
}

void encode(const Vocab& v, const TokenIndex& idx, std::string_view text, std::vector<int32_t>& out) {
  const bool whole_pieces = pretokenizer_kind(v.pre) == "llama3";  // llama.cpp's ignore_merges
  std::vector<std::string> sym;
  std::string key;
  for (const std::string& piece : pretokenize(text, v.pre)) {
    const std::string word = bytes_to_symbols(piece);
    if (whole_pieces) {
      if (const int32_t id = idx.find(word); id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    sym.clear();
    for (size_t i = 0; i < word.size();) {
      const size_t n = std::min(utf8_lead_len(word[i]), word.size() - i);
      sym.emplace_back(word, i, n);
      i += n;
    }
    // Merge the best-ranked adjacent pair (leftmost on ties) until none is listed.
    for (;;) {
      int best = -1, best_rank = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        key.assign(sym[i]).append(" ").append(sym[i + 1]);
        const auto it = idx.merge_rank.find(key);
        if (it != idx.merge_rank.end() && (best < 0 || it->second < best_rank)) best = (int)i, best_rank = it->second;
      }
      if (best < 0) break;
      sym[best] += sym[best + 1];
      sym.erase(sym.begin() + best + 1);
    }
    for (const std::string& s : sym) {
      if (const int32_t id = idx.find(s); id >= 0) {
        out.push_back(id);
        continue;
      }
      for (const char c : s)  // as llama.cpp: each byte of the symbol's spelling, where it is a token
        if (const int32_t id = idx.find(std::string_view(&c, 1)); id >= 0) out.push_back(id);
    }
  }
}

}  // namespace heirloom::bpe
