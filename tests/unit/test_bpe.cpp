// Byte-level BPE ("gpt2" vocabularies): pre-tokenizers, the byte map, merges by rank, llama3's whole-piece
// rule, the byte fallback, and a GGUF round trip of a model with such a vocabulary.
#include <gtest/gtest.h>

#include <filesystem>

#include "heirloom/error.h"
#include "heirloom/model.h"
#include "heirloom/vocab.h"
#include "io/gguf.h"
#include "text/bpe.h"

namespace heirloom {
namespace {

using Pieces = std::vector<std::string>;

TEST(Bpe, Gpt2PreTokenizerSplitsAsTheRegexSays) {
  EXPECT_EQ(bpe::pretokenize("Hello world's 123  test\n", "gpt-2"),
            (Pieces{"Hello", " world", "'s", " 123", " ", " test", "\n"}));
  EXPECT_EQ(bpe::pretokenize("", "gpt-2"), Pieces{});
  EXPECT_EQ(bpe::pretokenize("naïve café", "gpt-2"), (Pieces{"na\xC3\xAFve", " caf\xC3\xA9"}));
}

TEST(Bpe, Llama3PreTokenizerGroupsDigitsInThreesAndKeepsNewlinesWithPunctuation) {
  EXPECT_EQ(bpe::pretokenize("I'll pay 12345 dollars!!\n\nOK", "llama3"),
            (Pieces{"I", "'ll", " pay", " ", "123", "45", " dollars", "!!\n\n", "OK"}));
  EXPECT_EQ(bpe::pretokenize("I'LL", "llama-bpe"), (Pieces{"I", "'LL"}));
}

TEST(Bpe, SmollmSplitsEveryDigitFirst) {
  EXPECT_EQ(bpe::pretokenize("a12 b", "smollm"), (Pieces{"a", "1", "2", " b"}));
  EXPECT_THROW(bpe::pretokenize("x", "qwen2"), Error);
}

TEST(Bpe, PiecesAlwaysConcatenateToTheText) {
  const std::string text = "Tabs\tand  spaces \r\n x=1,234.5; \xFF\xFE invalid \xE2\x82 cut, emoji \xF0\x9F\x98\x80!";
  for (const char* pre : {"gpt-2", "llama3", "smollm"}) {
    std::string joined;
    for (const std::string& p : bpe::pretokenize(text, pre)) joined += p;
    EXPECT_EQ(joined, text) << pre;
  }
}

TEST(Bpe, PreTokenizersGoByLlamaCppsNames) {
  const std::string text = "Hello world's 12345 naïve\n\n  x";
  for (const char* alias : {"phi-2", "jina-es", "modern-bert"})
    EXPECT_EQ(bpe::pretokenize(text, alias), bpe::pretokenize(text, "gpt-2")) << alias;
  for (const char* alias : {"llama-bpe", "llama-v3", "falcon3", "pixtral"})
    EXPECT_EQ(bpe::pretokenize(text, alias), bpe::pretokenize(text, "llama3")) << alias;
  EXPECT_NE(bpe::pretokenize(text, "gpt-2"), bpe::pretokenize(text, "llama3"));  // "12345": one piece vs 123|45
  for (const char* unknown : {"gpt2", "default", "qwen2", ""}) {  // llama.cpp itself refuses "gpt2"
    EXPECT_FALSE(bpe::pretokenizer_supported(unknown)) << unknown;
    EXPECT_THROW(bpe::pretokenize(text, unknown), Error) << unknown;
  }
}

TEST(Bpe, ByteMapIsGpt2sAndInvertible) {
  EXPECT_EQ(bpe::bytes_to_symbols(" "), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(bpe::bytes_to_symbols("\n"), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(bpe::bytes_to_symbols("a!~"), "a!~");
  std::string all;
  for (int b = 0; b < 256; ++b) all += (char)b;
  std::string back;
  bpe::symbols_to_bytes(bpe::bytes_to_symbols(all), back);
  EXPECT_EQ(back, all);
}

// Every byte as a token, then the given merged tokens and merges.
Vocab byte_level(std::vector<std::string> extra, std::vector<std::string> merges, std::string pre = "gpt-2") {
  Vocab v;
  v.model = "gpt2";
  v.pre = std::move(pre);
  v.add_bos = false;
  v.add_space_prefix = false;
  v.tokens = {"<|end|>"};
  v.types = {kTokenControl};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(bpe::bytes_to_symbols(std::string(1, (char)b)));
    v.types.push_back(kTokenNormal);
  }
  for (auto& t : extra) {
    v.tokens.push_back(t);
    v.types.push_back(kTokenNormal);
  }
  v.scores.assign(v.tokens.size(), 0.f);
  v.merges = std::move(merges);
  v.bos_id = v.eos_id = v.unk_id = 0;
  return v;
}

int32_t id_of(const Vocab& v, const std::string& t) {
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == t) return (int32_t)i;
  return -1;
}

TEST(Bpe, MergesApplyByRankLeftmostFirst) {
  const Vocab v = byte_level({"he", "ll", "hell", "hello", "\xC4\xA0w"}, {"l l", "h e", "he ll", "hell o", "\xC4\xA0 w"});
  EXPECT_EQ(encode(v, "hello", false), (std::vector<int32_t>{id_of(v, "hello")}));
  // "lll": the leftmost pair merges first → "ll" + "l".
  EXPECT_EQ(encode(v, "lll", false), (std::vector<int32_t>{id_of(v, "ll"), id_of(v, "l")}));
  EXPECT_EQ(encode(v, " w", false), (std::vector<int32_t>{id_of(v, "\xC4\xA0w")}));
  // Rank matters: with "h e" ranked after "e l"-style merges absent, "he" still forms; reorder to block "hell".
  const Vocab w = byte_level({"he", "ll", "el", "hell", "hello"}, {"e l", "h e", "l l", "he ll", "hell o"});
  EXPECT_EQ(encode(w, "hell", false), (std::vector<int32_t>{id_of(w, "h"), id_of(w, "el"), id_of(w, "l")}));
  for (const char* text : {"hello", "lll", "x y", "caf\xC3\xA9 \xF0\x9F\x98\x80 \xFF\x01"}) EXPECT_EQ(decode(v, encode(v, text, false)), text);
}

TEST(Bpe, Llama3TakesWholePiecesThatAreTokens) {
  // "Ġworld" is a token but no merge builds it: llama3 uses it whole, gpt2 spells it out.
  const Vocab l3 = byte_level({"\xC4\xA0world"}, {}, "llama3");
  EXPECT_EQ(encode(l3, " world", false), (std::vector<int32_t>{id_of(l3, "\xC4\xA0world")}));
  const Vocab g2 = byte_level({"\xC4\xA0world"}, {}, "gpt-2");
  EXPECT_EQ(encode(g2, " world", false).size(), 6u);
}

TEST(Bpe, MergedSymbolsThatAreNotTokensFallBackToBytes) {
  Vocab v = byte_level({}, {"a b"});  // merges "ab", which is not a token
  EXPECT_EQ(encode(v, "ab", false), (std::vector<int32_t>{id_of(v, "a"), id_of(v, "b")}));
}

TEST(Bpe, ModelWithAGpt2VocabularyRoundTripsThroughGguf) {
  ModelConfig c = preset_config("tiny");
  Vocab v = byte_level({"he", "ll", "hello"}, {"h e", "l l", "he ll", "hell o"}, "smollm");
  v.add_bos = true;
  c.n_vocab = v.n_tokens();
  const Model m = init_model(c, v, 4);
  const std::string path = (std::filesystem::temp_directory_path() / "heirloom_bpe_model.gguf").string();
  save_model(m, path, StorageType::f16);
  const Model r = load_model(path);
  EXPECT_EQ(r.vocab.model, "gpt2");
  EXPECT_EQ(r.vocab.pre, "smollm");
  EXPECT_EQ(r.vocab.merges, v.merges);
  EXPECT_FALSE(r.vocab.add_space_prefix);
  const std::string text = "hello 42 w\xC3\xB6rld";
  EXPECT_EQ(encode(r.vocab, text, true), encode(v, text, true));
  EXPECT_EQ(encode(r.vocab, text, true)[0], 0);  // BOS
  EXPECT_EQ(decode(r.vocab, encode(r.vocab, text, true)), text);
  // Unknown pre-tokenizers and tokenizer kinds are refused by name.
  for (const auto& [key, value, needle] : {std::tuple{"tokenizer.ggml.pre", "qwen2", "qwen2"},
                                           std::tuple{"tokenizer.ggml.model", "bert", "bert"}}) {
    gguf::Writer w;
    write_vocab(w, v);
    w.set_string(key, value);
    try {
      (void)read_vocab(gguf::read_bytes(w.to_bytes()));
      ADD_FAILURE() << value << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove(path);
}

// Without tokenizer.ggml.add_bos_token, BOS follows llama.cpp's defaults: added for the llama3 family of
// pre-tokenizers, not for gpt-2 or smollm (llama-tokenize on GPT-2's vocabulary prints no BOS).
TEST(Bpe, BosDefaultFollowsLlamaCppWhenTheKeyIsAbsent) {
  for (const auto& [pre, want] : {std::pair{"gpt-2", false}, std::pair{"smollm", false}, std::pair{"llama-bpe", true},
                                  std::pair{"llama3", true}}) {
    gguf::Writer full;
    write_vocab(full, byte_level({}, {}, pre));
    gguf::Writer w;  // the same keys but add_bos_token
    for (const gguf::KeyValue& kv : gguf::read_bytes(full.to_bytes()).kv)
      if (kv.key != "tokenizer.ggml.add_bos_token") w.set(kv.key, kv.value);
    EXPECT_EQ(read_vocab(gguf::read_bytes(w.to_bytes())).add_bos, want) << pre;
  }
}

// User-defined tokens are cut out before either algorithm runs, longest token first over every piece
// (llama.cpp's order), and a SentencePiece space prefix follows each of them.
TEST(Bpe, UserDefinedTokensAreCutOutFirstLongestFirst) {
  const auto add = [](Vocab& v, const std::string& t) {
    v.tokens.push_back(t);
    v.types.push_back(kTokenUserDefined);
    v.scores.push_back(0.f);
    v.invalidate_index();
    return v.n_tokens() - 1;
  };
  Vocab spm = byte_vocab();
  const int32_t me = add(spm, "<|me|>"), bcd = add(spm, "bcd"), ab = add(spm, "ab");
  auto cat = [](std::vector<std::vector<int32_t>> parts) {
    std::vector<int32_t> r;
    for (auto& p : parts) r.insert(r.end(), p.begin(), p.end());
    return r;
  };
  Vocab plain = byte_vocab();  // the same without user-defined tokens: how each text piece encodes
  EXPECT_EQ(encode(spm, "hi<|me|>there", false), cat({encode(plain, "hi", false), {me}, encode(plain, "there", false)}));
  EXPECT_EQ(encode(spm, "<|me|>", true), (std::vector<int32_t>{1, me}));
  // "bcd" (longer) is cut before "ab" is looked for: "abcd" → "a", bcd; not ab, "cd".
  EXPECT_EQ(encode(spm, "abcd", false), cat({encode(plain, "a", false), {bcd}}));
  EXPECT_EQ(encode(spm, "ab ab", false), cat({{ab}, encode(plain, " ", false), {ab}}));
  Vocab g = byte_level({}, {});
  const int32_t gme = add(g, "<|me|>");
  Vocab gplain = byte_level({}, {});
  EXPECT_EQ(encode(g, "a<|me|> b", false), cat({encode(gplain, "a", false), {gme}, encode(gplain, " b", false)}));
  EXPECT_EQ(decode(g, encode(g, "a<|me|> b", false)), "a<|me|> b");
}

}  // namespace
}  // namespace heirloom
