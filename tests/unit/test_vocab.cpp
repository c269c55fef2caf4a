// The "llama" SPM tokenizer: exact ids for hand-checked cases, equivalence with a naive O(n^2)
// reference of the same merge rule on random inputs, byte-exact round trips, and GGUF round trips.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "heirloom/error.h"
#include "io/gguf.h"
#include "heirloom/vocab.h"

using namespace heirloom;

namespace {

const std::string kSp = "\xE2\x96\x81";  // U+2581

int32_t byte_id(uint8_t b) { return 3 + b; }  // in byte_vocab()

// A vocabulary from (piece, score) pairs after the three specials; pieces may use kSp.
Vocab make_vocab(const std::vector<std::pair<std::string, float>>& pieces, bool with_bytes = false) {
  Vocab v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.scores = {0, 0, 0};
  v.types = {kTokenUnknown, kTokenControl, kTokenControl};
  for (const auto& [p, s] : pieces) {
    v.tokens.push_back(p);
    v.scores.push_back(s);
    v.types.push_back(kTokenNormal);
  }
  if (with_bytes) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      v.tokens.emplace_back(name);
      v.scores.push_back(0);
      v.types.push_back(kTokenByte);
    }
  }
  return v;
}

int32_t id_of(const Vocab& v, const std::string& piece) {
  for (int32_t i = 0; i < v.n_tokens(); ++i)
    if (v.tokens[i] == piece) return i;
  ADD_FAILURE() << "no token " << piece;
  return -1;
}

// The merge rule written as plainly as possible: rescan for the best pair every time.
std::vector<int32_t> naive_encode(const Vocab& v, const std::string& text) {
  if (text.empty()) return {};
  std::map<std::string, int32_t> ids;
  for (int32_t i = 0; i < v.n_tokens(); ++i) ids[v.tokens[i]] = i;
  std::string s = v.add_space_prefix ? kSp : "";
  for (char c : text) s += c == ' ' ? kSp : std::string(1, c);
  std::vector<std::string> pieces;
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    const size_t len = std::min<size_t>(c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4, s.size() - i);
    pieces.push_back(s.substr(i, len));
    i += len;
  }
  for (;;) {
    int best = -1;
    float best_score = 0;
    for (size_t i = 0; i + 1 < pieces.size(); ++i) {
      const auto it = ids.find(pieces[i] + pieces[i + 1]);
      if (it != ids.end() && (best < 0 || v.scores[it->second] > best_score)) {
        best = static_cast<int>(i);
        best_score = v.scores[it->second];
      }
    }
    if (best < 0) break;
    pieces[best] += pieces[best + 1];
    pieces.erase(pieces.begin() + best + 1);
  }
  std::vector<int32_t> out;
  for (const std::string& p : pieces) {
    if (const auto it = ids.find(p); it != ids.end()) {
      out.push_back(it->second);
      continue;
    }
    for (unsigned char c : p) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", c);
      const auto b = ids.find(name);
      out.push_back(b != ids.end() ? b->second : v.unk_id);
    }
  }
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

}  // namespace

TEST(Vocab, ByteVocabLayout) {
  const Vocab v = byte_vocab();
  ASSERT_EQ(v.n_tokens(), 259);
  EXPECT_EQ(v.tokens[0], "<unk>");
  EXPECT_EQ(v.tokens[1], "<s>");
  EXPECT_EQ(v.tokens[2], "</s>");
  EXPECT_EQ(v.tokens[3], "<0x00>");
  EXPECT_EQ(v.tokens[3 + 0xAB], "<0xAB>");
  EXPECT_EQ(v.tokens[258], "<0xFF>");
  EXPECT_EQ(v.types[0], kTokenUnknown);
  EXPECT_EQ(v.types[1], kTokenControl);
  EXPECT_EQ(v.types[2], kTokenControl);
  EXPECT_EQ(v.types[100], kTokenByte);
  EXPECT_EQ(v.scores.size(), 259u);
  EXPECT_EQ(v.bos_id, 1);
  EXPECT_EQ(v.eos_id, 2);
  EXPECT_EQ(v.unk_id, 0);
}

TEST(Vocab, ByteVocabExactIds) {
  const Vocab v = byte_vocab();
  // "a" -> "▁a" = E2 96 81 61, spelled in byte tokens after BOS.
  EXPECT_EQ(encode(v, "a", true), (std::vector<int32_t>{1, 229, 153, 132, 100}));
  EXPECT_EQ(encode(v, "a", false), (std::vector<int32_t>{229, 153, 132, 100}));
  EXPECT_EQ(encode(v, "", true), std::vector<int32_t>{1});  // no prefix for an empty text
  EXPECT_TRUE(encode(v, "", false).empty());
  EXPECT_EQ(encode(v, "\n", false),
            (std::vector<int32_t>{byte_id(0xE2), byte_id(0x96), byte_id(0x81), byte_id('\n')}));
  Vocab no_bos = v;
  no_bos.add_bos = false;
  no_bos.add_space_prefix = false;
  EXPECT_EQ(encode(no_bos, "a b", true), (std::vector<int32_t>{byte_id('a'), byte_id(0xE2), byte_id(0x96),
                                                               byte_id(0x81), byte_id('b')}));
}

TEST(Vocab, ByteVocabRoundTrips) {
  const Vocab v = byte_vocab();
  const std::vector<std::string> cases = {
      "", " ", "  ", "a", " a", "a ", "  a  b  ", "hello world", "\n", "line1\nline2\n\n", "\t x \r\n",
      "\xff\xfe", "\xff", "\x80" "abc", "\xE2\x82", "caf\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\x98\x80!",
      std::string("nul\0byte", 8), "\xC3", "a\xF8" "bcdef"};
  for (const std::string& s : cases) {
    EXPECT_EQ(decode(v, encode(v, s, true)), s) << "case '" << s << "'";
    EXPECT_EQ(decode(v, encode(v, s, false)), s) << "case '" << s << "'";
  }
  std::mt19937 rng(99);
  for (int it = 0; it < 500; ++it) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 3 == 0 ? ' ' : rng() % 256);
    s = replace_all(s, kSp, "_");  // a literal U+2581 in the input decodes as a space (by design)
    ASSERT_EQ(decode(v, encode(v, s, true)), s) << "iteration " << it;
  }
}

TEST(Vocab, MergesFollowScores) {
  // "▁ab": pairs "▁a" and "ab" compete; the higher score wins and the rest cannot merge.
  Vocab v1 = make_vocab({{kSp, -5}, {"a", -5}, {"b", -5}, {"ab", -1}, {kSp + "a", -2}});
  EXPECT_EQ(encode(v1, "ab", true), (std::vector<int32_t>{1, id_of(v1, kSp), id_of(v1, "ab")}));
  Vocab v2 = make_vocab({{kSp, -5}, {"a", -5}, {"b", -5}, {"ab", -1}, {kSp + "a", 0}});
  EXPECT_EQ(encode(v2, "ab", true), (std::vector<int32_t>{1, id_of(v2, kSp + "a"), id_of(v2, "b")}));
  // With "▁ab" present both paths end in one token.
  Vocab v3 = make_vocab({{kSp, -5}, {"a", -5}, {"b", -5}, {"ab", -1}, {kSp + "a", -2}, {kSp + "ab", -0.5f}});
  EXPECT_EQ(encode(v3, "ab", false), std::vector<int32_t>{id_of(v3, kSp + "ab")});
  EXPECT_EQ(encode(v3, "ab ab", false), (std::vector<int32_t>{id_of(v3, kSp + "ab"), id_of(v3, kSp + "ab")}));
  EXPECT_EQ(decode(v3, encode(v3, "ab ab", true)), "ab ab");
  // Tokens may span a space; the tokenizer must not treat "▁" as a boundary.
  Vocab v4 = make_vocab({{kSp, -5}, {"a", -5}, {"b", -5}, {"a" + kSp, -1}, {"a" + kSp + "b", -1}});
  EXPECT_EQ(encode(v4, "a b", false), (std::vector<int32_t>{id_of(v4, kSp), id_of(v4, "a" + kSp + "b")}));
  // Merged pieces are found only through adjacent merges: "abab" without "aba"/"bab" stays two "ab".
  EXPECT_EQ(encode(v3, "abab", false), (std::vector<int32_t>{id_of(v3, kSp + "ab"), id_of(v3, "ab")}));
}

TEST(Vocab, TiesMergeLeftmost) {
  const Vocab v = make_vocab({{kSp, -5}, {"a", -5}, {"aa", -1}});
  // "▁aaa": the pairs at 1-2 and 2-3 tie; the leftmost merges, leaving [▁, aa, a].
  EXPECT_EQ(encode(v, "aaa", false), (std::vector<int32_t>{id_of(v, kSp), id_of(v, "aa"), id_of(v, "a")}));
  EXPECT_EQ(encode(v, "aaaa", false), (std::vector<int32_t>{id_of(v, kSp), id_of(v, "aa"), id_of(v, "aa")}));
}

TEST(Vocab, FallbackToBytesOrUnknown) {
  const Vocab no_bytes = make_vocab({{kSp, -1}, {"a", -1}});
  EXPECT_EQ(encode(no_bytes, "ac", false), (std::vector<int32_t>{id_of(no_bytes, kSp), id_of(no_bytes, "a"), 0}));
  const Vocab bytes = make_vocab({{kSp, -1}, {"a", -1}, {"\xC3\xA9", -1}}, true);
  EXPECT_EQ(encode(bytes, "ac\xC3\xA9", false),
            (std::vector<int32_t>{id_of(bytes, kSp), id_of(bytes, "a"), id_of(bytes, "<0x63>"),
                                  id_of(bytes, "\xC3\xA9")}));
  // A 2-byte character that is not a token is spelled as its two bytes.
  EXPECT_EQ(encode(bytes, "\xC3\xA8", false),
            (std::vector<int32_t>{id_of(bytes, kSp), id_of(bytes, "<0xC3>"), id_of(bytes, "<0xA8>")}));
}

TEST(Vocab, MatchesNaiveReferenceOnRandomInput) {
  // A random vocabulary over a small alphabet with coarse scores (many ties), as llama.cpp would see it.
  const std::vector<std::string> alphabet = {"a", "b", "c", kSp, "\xC3\xA9"};
  std::mt19937 rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<std::pair<std::string, float>> pieces;
    std::map<std::string, bool> seen;
    for (const std::string& a : alphabet) {
      pieces.push_back({a, -10});
      seen[a] = true;
    }
    for (int k = 0; k < 40; ++k) {
      std::string p;
      for (size_t len = 2 + rng() % 3; len > 0; --len) p += alphabet[rng() % alphabet.size()];
      if (!seen[p]) {
        seen[p] = true;
        pieces.push_back({p, static_cast<float>(rng() % 4)});
      }
    }
    const Vocab v = make_vocab(pieces, trial % 2 == 0);
    for (int it = 0; it < 50; ++it) {
      std::string text;
      for (size_t n = rng() % 30; n > 0; --n) {
        const uint32_t r = rng() % 7;
        text += r < 4 ? alphabet[r] == kSp ? " " : alphabet[r] : r == 4 ? "\xC3\xA9" : r == 5 ? " " : "d";
      }
      ASSERT_EQ(encode(v, text, false), naive_encode(v, text)) << "trial " << trial << " text '" << text << "'";
      if (trial % 2 == 0) {
        ASSERT_EQ(decode(v, encode(v, text, true)), text);
      }
    }
  }
}

// encode_first tokenises a prefix of a long text cut where no token can span (spm_cut): the ids before every
// such cut are the whole text's first ones, with tokens that hold "▁" inside and around them and damaged
// UTF-8 before a space; and encode_first's ids are the whole text's first ones.
TEST(Vocab, EncodeFirstIsTheStartOfEncode) {
  const std::vector<std::string> alphabet = {"a", "b", "c", kSp, "\xC3\xA9", "\n"};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<std::pair<std::string, float>> pieces;
    std::map<std::string, bool> seen;
    for (const std::string& a : alphabet) pieces.push_back({a, -10}), seen[a] = true;
    for (int k = 0; k < 60; ++k) {
      std::string p;
      for (size_t len = 2 + rng() % 4; len > 0; --len) p += alphabet[rng() % alphabet.size()];
      if (!seen[p]) seen[p] = true, pieces.push_back({p, static_cast<float>(rng() % 4)});
    }
    const Vocab v = make_vocab(pieces, true);
    std::string text;
    // "\xE2" "abc*": a lead byte with no continuation bytes (damaged UTF-8), then four ASCII bytes, the last one a
    // character no token holds: a space after them is a cut
    while (text.size() < 12000) {
      const uint32_t r = rng() % 10;
      text += r < 3 ? "a" : r == 3 ? "b" : r == 4 ? "c" : r < 7 ? " " : r == 7 ? "\xC3\xA9" : r == 8 ? "\n" : "\xE2" "abc*";
    }
    const std::vector<int32_t> all = encode(v, text, true);
    int cuts = 0;
    for (size_t from = 0; from < text.size(); from += 1 + rng() % 200) {
      const size_t cut = spm_cut(v, text, from);
      if (cut == std::string_view::npos) break;
      ASSERT_GE(cut, from);
      ASSERT_EQ(text[cut], ' ');
      const std::vector<int32_t> before = encode(v, text.substr(0, cut), true);
      ASSERT_TRUE(std::equal(before.begin(), before.end(), all.begin())) << "trial " << trial << " cut " << cut;
      ++cuts;
    }
    EXPECT_GT(cuts, 20) << "trial " << trial;
    for (size_t n : {size_t{1}, size_t{37}, size_t{600}, all.size() - 1, all.size(), all.size() + 5}) {
      const std::vector<int32_t> first = encode_first(v, text, true, n);
      ASSERT_EQ(first.size(), std::min(n, all.size())) << "trial " << trial << " n " << n;
      ASSERT_TRUE(std::equal(first.begin(), first.end(), all.begin())) << "trial " << trial << " n " << n;
    }
  }
}

TEST(Vocab, LongTextRoundTrips) {
  const Vocab v = make_vocab({{kSp, -3}, {"t", -3}, {"h", -3}, {"e", -3}, {"th", -1}, {"the", 0}, {kSp + "the", 1}},
                             true);
  std::string text;
  for (int i = 0; i < 20000; ++i) text += (i % 7 == 0) ? "the end\n" : "the theme ";
  const std::vector<int32_t> ids = encode(v, text, true);
  EXPECT_EQ(ids[1], id_of(v, kSp + "the"));
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ(decode(v, ids), text);
}

TEST(Vocab, DecodeAndPieces) {
  const Vocab v = make_vocab({{kSp + "ab", 0}, {"<tag>", 0}}, true);
  Vocab u = v;
  u.types[id_of(u, "<tag>")] = kTokenUserDefined;
  const int32_t ab = id_of(u, kSp + "ab"), tag = id_of(u, "<tag>");
  EXPECT_EQ(decode(u, std::vector<int32_t>{1, ab, tag, ab, 2}), "ab<tag> ab");  // specials give nothing
  EXPECT_EQ(decode(u, std::vector<int32_t>{ab}), "ab");                         // one leading space removed
  EXPECT_EQ(decode(u, std::vector<int32_t>{ab, ab}), "ab ab");
  EXPECT_EQ(decode(u, std::vector<int32_t>{0}), "");  // unknown: nothing, as llama.cpp
  EXPECT_EQ(token_piece(u, ab), " ab");
  EXPECT_EQ(token_piece(u, 1), "");
  EXPECT_EQ(token_piece(u, id_of(u, "<0x41>")), "A");
  EXPECT_EQ(token_piece(u, tag), "<tag>");
  Vocab keep = u;
  keep.add_space_prefix = false;
  EXPECT_EQ(decode(keep, std::vector<int32_t>{ab}), " ab");
  EXPECT_THROW(decode(u, std::vector<int32_t>{u.n_tokens()}), Error);
  EXPECT_THROW(decode(u, std::vector<int32_t>{-1}), Error);
  EXPECT_THROW(token_piece(u, 100000), Error);
}

TEST(Vocab, CopiesDoNotShareAStaleIndex) {
  const Vocab v = make_vocab({{kSp, -1}, {"a", -1}});
  EXPECT_EQ(encode(v, "aa", false), (std::vector<int32_t>{id_of(v, kSp), id_of(v, "a"), id_of(v, "a")}));
  Vocab w = v;
  w.tokens.push_back("aa");
  w.scores.push_back(0);
  w.types.push_back(kTokenNormal);
  EXPECT_EQ(encode(w, "aa", false), (std::vector<int32_t>{id_of(w, kSp), id_of(w, "aa")}));
  EXPECT_EQ(encode(v, "aa", false).size(), 3u);
  Vocab x = v;
  EXPECT_EQ(encode(x, "b", false), (std::vector<int32_t>{3, 0}));  // builds x's index
  x.tokens[4] = "b";  // in-place edit: same size, so the index must be invalidated by hand
  x.invalidate_index();
  EXPECT_EQ(encode(x, "b", false), (std::vector<int32_t>{id_of(x, kSp), 4}));
  Vocab broken = v;
  broken.scores.pop_back();
  EXPECT_THROW(encode(broken, "a", true), Error);
  Vocab bad_bos = v;
  bad_bos.bos_id = 99;
  EXPECT_THROW(encode(bad_bos, "a", true), Error);
}

TEST(Vocab, GgufRoundTrip) {
  Vocab v = make_vocab({{kSp, -1.5f}, {"a", -2.25f}, {"ab", 3}}, true);
  v.add_bos = false;
  v.add_space_prefix = false;
  v.bos_id = 2;
  v.eos_id = 1;
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  write_vocab(w, v);
  const gguf::File f = gguf::read_bytes(w.to_bytes());
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.find("tokenizer.ggml.bos_token_id")->type(), gguf::ValueType::U32);
  EXPECT_EQ(f.find("tokenizer.ggml.add_bos_token")->type(), gguf::ValueType::BOOL);
  const Vocab r = read_vocab(f);
  EXPECT_EQ(r.tokens, v.tokens);
  EXPECT_EQ(r.scores, v.scores);
  EXPECT_EQ(r.types, v.types);
  EXPECT_EQ(r.bos_id, 2);
  EXPECT_EQ(r.eos_id, 1);
  EXPECT_EQ(r.unk_id, 0);
  EXPECT_FALSE(r.add_bos);
  EXPECT_FALSE(r.add_space_prefix);
  EXPECT_EQ(encode(r, "ab a", true), encode(v, "ab a", true));
  EXPECT_EQ(encode(r, "ab a", true), (std::vector<int32_t>{id_of(v, "ab"), id_of(v, kSp), id_of(v, "a")}));

  const Vocab b = read_vocab(gguf::read_bytes([] {
    gguf::Writer w2;
    write_vocab(w2, byte_vocab());
    return w2.to_bytes();
  }()));
  EXPECT_EQ(b.n_tokens(), 259);
  EXPECT_TRUE(b.add_bos);
  EXPECT_EQ(encode(b, "a", true), (std::vector<int32_t>{1, 229, 153, 132, 100}));
}

TEST(Vocab, ReadVocabValidates) {
  const auto expect_msg = [](gguf::Writer& w, std::initializer_list<std::string_view> frags) {
    try {
      read_vocab(gguf::read_bytes(w.to_bytes(), "tok.gguf"));
      ADD_FAILURE() << "expected heirloom::Error";
    } catch (const Error& e) {
      for (std::string_view f : frags) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
      EXPECT_FALSE(e.hint().empty());
    }
  };
  const Vocab v = byte_vocab();
  {
    gguf::Writer w;
    write_vocab(w, v);
    w.set_string("tokenizer.ggml.model", "bert");
    expect_msg(w, {"tok.gguf", "bert", "llama", "gpt2"});
  }
  {
    gguf::Writer w;
    write_vocab(w, v);
    w.set_f32_array("tokenizer.ggml.scores", {1, 2, 3});
    expect_msg(w, {"tokenizer.ggml.scores", "259", "found 3"});
  }
  {
    gguf::Writer w;
    write_vocab(w, v);
    w.set_u32("tokenizer.ggml.eos_token_id", 259);
    expect_msg(w, {"eos_token_id", "259"});
  }
  {
    gguf::Writer w;
    write_vocab(w, v);
    w.set_i32("tokenizer.ggml.bos_token_id", 1);  // llama.cpp wants u32
    expect_msg(w, {"bos_token_id", "u32", "i32"});
  }
  {
    gguf::Writer w;
    write_vocab(w, v);
    std::vector<std::string> t = v.tokens;
    t[5] = "<0xZZ>";
    w.set_string_array("tokenizer.ggml.tokens", t);
    expect_msg(w, {"<0xZZ>"});
  }
  {
    gguf::Writer w;
    w.set_string("general.architecture", "llama");
    expect_msg(w, {"tokenizer.ggml.model"});
  }
}
