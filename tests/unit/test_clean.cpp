// Text cleaning: UTF-8 validity, HTML stripping, whitespace, paragraphs, the held-out split.
#include <gtest/gtest.h>

#include "text/clean.h"

namespace heirloom {
namespace {

TEST(Clean, Utf8) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xe2\x96"));          // truncated
  EXPECT_EQ(to_utf8("caf\xe9"), "caf\xc3\xa9");      // Latin-1 é
  EXPECT_EQ(to_utf8("caf\xc3\xa9"), "caf\xc3\xa9");  // already UTF-8
  EXPECT_TRUE(is_valid_utf8(to_utf8("\x80\xff\xfe abc \xc3")));
}

TEST(Clean, Html) {
  EXPECT_EQ(normalise_whitespace(strip_html(
                "<html><head><title>T</title><style>p{x:1}</style><script>var a=1<2;</script></head>"
                "<body><p>Hello &amp; <b>bold</b> &lt;world&gt;&#33;&#x41;</p><!-- c --><p>Two&nbsp;words</p></body>")),
            "T\n\nHello & bold <world>!A\n\nTwo words");
  EXPECT_EQ(strip_html("a &unknown; b & c"), "a &unknown; b & c");
  EXPECT_EQ(strip_html("unterminated <b"), "unterminated ");
}

TEST(Clean, Whitespace) {
  EXPECT_EQ(normalise_whitespace("  a\t b  \r\n c\n\n\n\n d \x01\n"), "a b\nc\n\nd");
  EXPECT_EQ(normalise_whitespace("\n\n\n"), "");
  const auto p = split_paragraphs(normalise_whitespace("one\ntwo\n\n\nthree\n\nfour"));
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0], "one\ntwo");
  EXPECT_EQ(p[2], "four");
}

TEST(Clean, HeldoutSplitIsDeterministicAndNearTheFraction) {
  int held = 0;
  for (int i = 0; i < 20000; ++i) held += is_heldout("paragraph " + std::to_string(i), "salt", 0.1);
  EXPECT_NEAR(held / 20000.0, 0.1, 0.01);
  EXPECT_EQ(is_heldout("same text", "s", 0.5), is_heldout("same text", "s", 0.5));
  int differ = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string p = "paragraph " + std::to_string(i);  // GCC 12 warns falsely (-Wrestrict) on "p" + to_string
    differ += is_heldout(p, "a", 0.5) != is_heldout(p, "b", 0.5);
  }
  EXPECT_GT(differ, 50);  // the salt matters
}

}  // namespace
}  // namespace heirloom
