// SPM tokenizer as llama.cpp runs it (llm_tokenizer_spm): a linked list of symbols and a heap of
// candidate merges, O(n log n). Symbols stay contiguous in the escaped text, so a candidate pair is
// looked up as a string_view of that text without building a string. The text is cut where no token
// can span the cut, which gives the same ids with small, cache-resident heaps. See vocab.h.
#include "heirloom/vocab.h"

#include <algorithm>
#include <cstdio>

#include "heirloom/error.h"
#include "text/bpe.h"
#include "text/clean.h"
#include "io/gguf.h"

namespace heirloom {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space
constexpr size_t kMaxText = size_t{1} << 30;              // keeps offsets in 32 bits after escaping

// "<0xHH>" -> 0..255, anything else -> -1.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// Replaces each U+2581 in s[from..] by a space, in place.
void unescape_from(std::string& s, size_t from) {
  size_t w = from;
  for (size_t r = from; r < s.size();) {
    if (s.compare(r, 3, kSpaceMark) == 0) {
      s[w++] = ' ';
      r += 3;
    } else {
      s[w++] = s[r++];
    }
  }
  s.resize(w);
}

void check_consistent(const Vocab& v) {
  if (v.scores.size() != v.tokens.size() || v.types.size() != v.tokens.size()) {
    throw Error("vocabulary: expected as many scores and types as tokens (" + std::to_string(v.tokens.size()) +
                    "), found " + std::to_string(v.scores.size()) + " scores and " + std::to_string(v.types.size()) +
                    " types",
                "build the vocabulary with byte_vocab() or read_vocab(), or fill all three arrays");
  }
  for (const int32_t id : {v.bos_id, v.eos_id, v.unk_id}) {
    if (id < 0 || id >= v.n_tokens()) {
      throw Error("vocabulary: expected BOS/EOS/UNK ids below " + std::to_string(v.n_tokens()) + ", found " +
                      std::to_string(id),
                  "set bos_id, eos_id and unk_id to tokens of this vocabulary");
    }
  }
}

void check_id(const Vocab& v, int32_t id) {
  if (id < 0 || id >= v.n_tokens()) {
    throw Error("token id: expected 0.." + std::to_string(v.n_tokens() - 1) + ", found " + std::to_string(id),
                "the ids do not belong to this vocabulary (a different model's tokenizer?)");
  }
}

// Appends one token's text (a byte token appends its raw byte; decode() handles byte runs).
void append_piece(std::string& out, const Vocab& v, int32_t id) {
  if (v.model == "gpt2") {  // byte-level: normal and user-defined tokens spell bytes as GPT-2 code points
    if (v.types[id] == kTokenNormal || v.types[id] == kTokenUserDefined) bpe::symbols_to_bytes(v.tokens[id], out);
    return;
  }
  switch (v.types[id]) {
    case kTokenNormal: {
      const size_t from = out.size();
      out += v.tokens[id];
      unescape_from(out, from);
      break;
    }
    case kTokenByte:
      if (const int b = parse_byte_token(v.tokens[id]); b >= 0) out += static_cast<char>(b);
      break;
    case kTokenUserDefined: out += v.tokens[id]; break;
    default: break;  // control, unknown, unused: no text, as llama.cpp without "special"
  }
}

}  // namespace

std::shared_ptr<const TokenIndex> Vocab::index() const {
  std::shared_ptr<const TokenIndex> p = cache_.p.load();
  if (p && p->n_tokens == tokens.size()) return p;
  auto idx = std::make_shared<TokenIndex>();
  idx->ids.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    idx->ids.insert_or_assign(t, static_cast<int32_t>(i));
    // Every adjacent character pair inside the token, characters split as encode() splits them.
    for (size_t a = 0, la = 0; a < t.size(); a += la) {
      la = std::min(utf8_lead_len(t[a]), t.size() - a);
      if (a + la < t.size()) idx->pairs.emplace(t, a, la + std::min(utf8_lead_len(t[a + la]), t.size() - a - la));
    }
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    int32_t id = idx->find(name);
    if (id < 0) id = idx->find(std::string(1, static_cast<char>(b)));  // llama.cpp's second try
    idx->byte_ids[b] = id >= 0 ? id : unk_id;
  }
  for (size_t i = 0; i < tokens.size(); ++i)
    if (types[i] == kTokenUserDefined && !tokens[i].empty()) idx->user_defined.push_back((int32_t)i);
  std::stable_sort(idx->user_defined.begin(), idx->user_defined.end(),
                   [&](int32_t a, int32_t b) { return tokens[a].size() > tokens[b].size(); });
  idx->merge_rank.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) idx->merge_rank.emplace(merges[r], (int32_t)r);  // first listing wins
  idx->n_tokens = tokens.size();
  cache_.p.store(idx);  // a racing builder may overwrite with an equal index: harmless
  return idx;
}

Vocab byte_vocab() {
  Vocab v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {kTokenUnknown, kTokenControl, kTokenControl};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.emplace_back(name);
    v.types.push_back(kTokenByte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  return v;
}

namespace {

// One fragment of plain text (no user-defined token inside) with the SentencePiece-style algorithm.
void encode_spm(const Vocab& vocab, const TokenIndex* idx, std::string_view text, bool space_prefix,
                std::vector<int32_t>& out) {
  std::string s;
  s.reserve(text.size() + text.size() / 4 + 3);
  if (space_prefix) s += kSpaceMark;
  for (char c : text) {
    if (c == ' ') s += kSpaceMark;
    else s += c;
  }

  // Symbols are characters at first; `n` grows as right neighbours merge in (and drops to 0 for them).
  struct Symbol {
    int32_t prev, next;
    uint32_t start, n;  // bytes of s
  };
  std::vector<Symbol> sym;
  sym.reserve(s.size());
  for (size_t off = 0; off < s.size();) {
    const size_t n = std::min(utf8_lead_len(s[off]), s.size() - off);
    sym.push_back({-1, -1, static_cast<uint32_t>(off), static_cast<uint32_t>(n)});
    off += n;
  }
  const auto piece = [&](int32_t i, uint32_t n) { return std::string_view(s).substr(sym[i].start, n); };

  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t size;  // left.n + right.n when queued; a mismatch later means the entry is stale
  };
  // Highest score first; among equal scores the leftmost pair (llama.cpp's comparator).
  const auto lower = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::vector<Bigram> heap;
  const auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const uint32_t size = sym[l].n + sym[r].n;
    const int32_t id = idx->find(piece(l, size));
    if (id < 0) return;
    heap.push_back({vocab.scores[id], l, r, size});
    std::push_heap(heap.begin(), heap.end(), lower);
  };

  // Merges in [a, b) exactly as llama.cpp would on the whole text. Running segments one at a time
  // changes nothing (see the caller) but keeps the heap small and in cache.
  const auto merge_segment = [&](int32_t a, int32_t b) {
    for (int32_t i = a; i < b; ++i) {
      sym[i].prev = i > a ? i - 1 : -1;
      sym[i].next = i + 1 < b ? i + 1 : -1;
    }
    heap.clear();
    for (int32_t i = a + 1; i < b; ++i) try_add(i - 1, i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), lower);
      const Bigram g = heap.back();
      heap.pop_back();
      Symbol& l = sym[g.left];
      Symbol& r = sym[g.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != g.size) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = g.left;
      try_add(l.prev, g.left);
      try_add(g.left, l.next);
    }
    for (int32_t i = a; i != -1; i = sym[i].next) {
      const std::string_view p = piece(i, sym[i].n);
      if (const int32_t id = idx->find(p); id >= 0) {
        out.push_back(id);
      } else {
        for (char c : p) out.push_back(idx->byte_ids[static_cast<uint8_t>(c)]);
      }
    }
  };

  // A merge across the boundary between characters i and i+1 would make a token that contains that
  // character pair. When no token does, the two sides never interact: each side's merges happen in
  // the same order as in one global run (the globally best pair is also best on its own side), so
  // the text can be cut there. For SentencePiece vocabularies that is before nearly every "▁".
  int32_t seg = 0;
  const auto n_sym = static_cast<int32_t>(sym.size());
  for (int32_t i = 0; i < n_sym; ++i) {
    if (i + 1 == n_sym || !idx->pairs.contains(piece(i, sym[i].n + sym[i + 1].n))) {
      merge_segment(seg, i + 1);
      seg = i + 1;
    }
  }
}

}  // namespace

std::vector<int32_t> encode(const Vocab& vocab, std::string_view text, bool add_bos) {
  check_consistent(vocab);
  std::vector<int32_t> out;
  if (add_bos && vocab.add_bos) out.push_back(vocab.bos_id);
  if (text.empty()) return out;  // llama.cpp: no fragment, so no space prefix either
  if (text.size() >= kMaxText) {
    throw Error("text to tokenize: expected under 1 GiB, found " + std::to_string(text.size()) + " bytes",
                "split the text into documents and tokenize them one by one");
  }
  const std::shared_ptr<const TokenIndex> idx = vocab.index();
  // As llama.cpp without "parse special": each user-defined token in turn, longest first, is cut out of
  // every remaining piece of text and stands for itself; a SentencePiece space prefix goes on the first
  // piece and on any piece that follows such a token.
  struct Fragment {
    std::string_view text;
    int32_t token;  // -1: text
  };
  std::vector<Fragment> frags{{text, -1}};
  for (const int32_t u : idx->user_defined) {
    const std::string& t = vocab.tokens[u];
    std::vector<Fragment> next;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t at = 0;
      for (size_t pos; (pos = f.text.find(t, at)) != std::string_view::npos; at = pos + t.size()) {
        if (pos > at) next.push_back({f.text.substr(at, pos - at), -1});
        next.push_back({{}, u});
      }
      if (at < f.text.size()) next.push_back({f.text.substr(at), -1});
    }
    frags = std::move(next);
  }
  bool after_token = true;
  for (const Fragment& f : frags) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_token = true;
      continue;
    }
    if (vocab.model == "gpt2") bpe::encode(vocab, *idx, f.text, out);
    else encode_spm(vocab, idx.get(), f.text, vocab.add_space_prefix && after_token, out);
    after_token = false;
  }
  return out;
}

size_t spm_cut(const Vocab& vocab, std::string_view text, size_t from) {
  const std::shared_ptr<const TokenIndex> idx = vocab.index();
  // Before a space whose pair with the character before it (as encode_spm escapes them) is in no token:
  // encode_spm cuts there too. The four bytes before the space are ASCII, so however encode_spm splits damaged
  // UTF-8 earlier on, its characters end at both sides.
  for (size_t i = text.find(' ', std::max<size_t>(from, 4)); i != std::string_view::npos; i = text.find(' ', i + 1)) {
    bool ascii = true;
    for (size_t b = i - 4; b < i; ++b) ascii &= static_cast<unsigned char>(text[b]) < 0x80;
    const std::string pair = (text[i - 1] == ' ' ? std::string(kSpaceMark) : std::string(1, text[i - 1])) + std::string(kSpaceMark);
    if (ascii && !idx->pairs.contains(pair)) return i;
  }
  return std::string_view::npos;
}

std::vector<int32_t> encode_first(const Vocab& vocab, std::string_view text, bool add_bos, size_t max_tokens) {
  if (vocab.model != "gpt2" && vocab.index()->user_defined.empty() && max_tokens < text.size()) {
    // Tokens average a few bytes; 8 per id is ample for the first try, and each retry doubles it.
    for (size_t want = std::max<size_t>(4096, 8 * max_tokens); want < text.size(); want *= 2) {
      const size_t cut = spm_cut(vocab, text, want);
      if (cut == std::string_view::npos) break;
      std::vector<int32_t> ids = encode(vocab, text.substr(0, cut), add_bos);
      if (ids.size() >= max_tokens) {
        ids.resize(max_tokens);
        return ids;
      }
    }
  }
  std::vector<int32_t> ids = encode(vocab, text, add_bos);
  if (ids.size() > max_tokens) ids.resize(max_tokens);
  return ids;
}

std::string decode(const Vocab& vocab, std::span<const int32_t> ids) {
  check_consistent(vocab);
  std::string out;
  size_t run = std::string::npos;  // where the current run of byte tokens began in `out`
  for (const int32_t id : ids) {
    check_id(vocab, id);
    const bool is_byte = vocab.types[id] == kTokenByte;
    if (is_byte && run == std::string::npos) run = out.size();
    if (!is_byte && run != std::string::npos) {
      unescape_from(out, run);  // a U+2581 spelled in bytes is a space too
      run = std::string::npos;
    }
    append_piece(out, vocab, id);
  }
  if (run != std::string::npos) unescape_from(out, run);
  if (vocab.add_space_prefix && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string token_piece(const Vocab& vocab, int32_t id) {
  check_consistent(vocab);
  check_id(vocab, id);
  std::string out;
  append_piece(out, vocab, id);
  return out;
}

void write_vocab(gguf::Writer& w, const Vocab& vocab) {
  check_consistent(vocab);
  w.set_string("tokenizer.ggml.model", vocab.model);
  if (vocab.model == "gpt2") w.set_string("tokenizer.ggml.pre", vocab.pre);
  w.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
  if (vocab.model == "gpt2") w.set_string_array("tokenizer.ggml.merges", vocab.merges);
  else w.set_f32_array("tokenizer.ggml.scores", vocab.scores);
  w.set_i32_array("tokenizer.ggml.token_type", vocab.types);
  w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(vocab.bos_id));
  w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.eos_id));
  w.set_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(vocab.unk_id));
  w.set_bool("tokenizer.ggml.add_bos_token", vocab.add_bos);
  w.set_bool("tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);
}

Vocab read_vocab(const gguf::File& f) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model != "llama" && model != "gpt2") {
    throw Error(f.path + ": tokenizer.ggml.model: expected \"llama\" or \"gpt2\", found \"" + model + "\"",
                "heirloom reads SentencePiece-style (llama) and byte-level BPE (gpt2) vocabularies");
  }
  Vocab v;
  v.model = model;
  if (model == "gpt2") {
    v.pre = f.get_string("tokenizer.ggml.pre", "default");
    if (!bpe::pretokenizer_supported(v.pre))
      throw Error(f.path + ": tokenizer.ggml.pre: the pre-tokenizer \"" + v.pre + "\" is not supported",
                  bpe::kKnownPretokenizers);
    v.merges = f.get_string_array("tokenizer.ggml.merges");
    for (const std::string& m : v.merges)
      if (m.find(' ') == std::string::npos || m.find(' ') == 0 || m.find(' ') + 1 == m.size())
        throw Error(f.path + ": tokenizer.ggml.merges: expected \"A B\" pairs, found \"" + m + "\"", "the vocabulary is damaged");
  }
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  if (n == 0 || n > static_cast<size_t>(INT32_MAX)) {
    throw Error(f.path + ": tokenizer.ggml.tokens: expected 1..2^31-1 tokens, found " + std::to_string(n),
                "the vocabulary is missing or damaged");
  }
  // As llama.cpp: scores and types may be absent (0 and normal), but if present must match.
  v.scores = f.get_f32_array("tokenizer.ggml.scores", std::vector<float>(n, 0.0f));
  v.types = f.get_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(n, kTokenNormal));
  for (const auto& [key, size] : {std::pair{"tokenizer.ggml.scores", v.scores.size()},
                                  std::pair{"tokenizer.ggml.token_type", v.types.size()}}) {
    if (size != n) {
      throw Error(f.path + ": " + key + ": expected " + std::to_string(n) + " entries (one per token), found " +
                      std::to_string(size),
                  "the vocabulary arrays disagree; the file is damaged or was written by a broken tool");
    }
  }
  const auto read_id = [&](const char* key, uint32_t def) {
    const uint32_t id = f.get_u32(key, def);
    if (id >= n) {
      throw Error(f.path + ": " + key + ": expected a token id below " + std::to_string(n) + ", found " +
                      std::to_string(id),
                  "the special token ids do not fit the vocabulary; the file is damaged");
    }
    return static_cast<int32_t>(id);
  };
  v.bos_id = read_id("tokenizer.ggml.bos_token_id", 1);
  v.eos_id = read_id("tokenizer.ggml.eos_token_id", 2);
  v.unk_id = read_id("tokenizer.ggml.unknown_token_id", 0);
  // Without the key, llama.cpp adds BOS for SentencePiece vocabularies and for the llama3 family of BPE
  // pre-tokenizers, not for gpt-2 or smollm.
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", model == "llama" || bpe::pretokenizer_kind(v.pre) == "llama3");
  v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", model == "llama");
  for (size_t i = 0; i < n; ++i) {
    if (model == "llama" && v.types[i] == kTokenByte && parse_byte_token(v.tokens[i]) < 0) {
      throw Error(f.path + ": token " + std::to_string(i) + ": expected a byte token spelled <0xXX>, found \"" +
                      v.tokens[i] + "\"",
                  "the vocabulary is damaged or not SentencePiece-style");
    }
  }
  v.index();  // build once here rather than on the first encode
  return v;
}

Vocab load_vocab(const std::string& path) { return read_vocab(gguf::read_file(path)); }

}  // namespace heirloom
