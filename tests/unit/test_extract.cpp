// Format extractors: an exact small sample per format, gunzip (round trip, truncation, corruption, the size
// cap), robustness against random bytes, and real installed documents when this machine has them.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <functional>
#include <fstream>
#include <random>
#include <sstream>

#include "error_of.h"
#include "heirloom/error.h"
#include "text/clean.h"
#include "text/extract.h"

namespace heirloom {
namespace {

std::string gzip_bytes(std::string_view data) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);  // +16: gzip wrapper
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = (Bytef*)data.data();
  z.avail_in = (uInt)data.size();
  z.next_out = (Bytef*)out.data();
  z.avail_out = (uInt)out.size();
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

using testing::error_of;

TEST(Extract, FormatNames) {
  for (TextFormat f : {TextFormat::plain, TextFormat::html, TextFormat::rest, TextFormat::pod, TextFormat::asciidoc,
                       TextFormat::info, TextFormat::dictd, TextFormat::fortune, TextFormat::vim_help, TextFormat::code})
    EXPECT_EQ(parse_text_format(text_format_name(f)), f);
  EXPECT_EQ(parse_text_format("vim-help"), TextFormat::vim_help);
  const std::string msg = error_of([] { parse_text_format("markdown"); });
  EXPECT_NE(msg.find("\"markdown\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("plain"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vim_help"), std::string::npos) << msg;
}

TEST(Extract, Plain) {
  // Latin-1 NBSP, overstruck underline, stray control bytes, extra blank lines.
  EXPECT_EQ(extract_text(TextFormat::plain, "a\xa0" "b  c\x01\n\n\n\n_\bx_\by\n"), "a b c\n\nxy");
}

TEST(Extract, Html) {
  EXPECT_EQ(extract_text(TextFormat::html,
                         "<html><HEAD><title>Dropped</title><meta charset=utf-8></HEAD><body><header>Site</header>"
                         "<p>Hello&nbsp;<b>world</b> &amp; co</p><div>Two</div></body></html>"),
            "Site\n\nHello world & co\n\nTwo");
}

TEST(Extract, Rest) {
  const char* src =
      ".. _label:\n\n*****\nTitle\n*****\n\n"
      "Intro with :func:`len` and :ref:`the guide <guide-target>` and ``x = 1``,\n"
      "**bold**, *emph*, `Python <https://python.org>`_ and :meth:`~a.b.method`.\n\n"
      ".. index:: single: thing\n\n"
      ".. note::\n   A note body.\n\n"
      ".. code-block:: python\n\n   print(\"dropped\")\n\n"
      ".. function:: spam(eggs)\n   :noindex:\n\n   Spam the eggs [1]_.\n\n"
      "   .. versionchanged:: 3.2\n      Accepts *eggs*.\n\n"
      "For example::\n\n   code()\n\n"
      ">>> doctest()\n'dropped'\n\n"
      ".. a comment\n   spanning lines\n\n"
      "+---+---+\n| a | b |\n+---+---+\n\nDone.\n";
  EXPECT_EQ(extract_text(TextFormat::rest, src),
            "Title\n\nIntro with len and the guide and x = 1,\nbold, emph, Python and method.\n\nA note body.\n\n"
            "Spam the eggs.\n\nAccepts eggs.\n\nFor example:\n\nDone.");
}

TEST(Extract, Asciidoc) {
  const char* src =
      "git-foo(1)\n==========\n\nNAME\n----\ngit-foo - Do the 'foo' thing\n\n"
      ":attr: value\n[[anchor]]\nifdef::something[]\ninclude::other.txt[]\n\n"
      "DESCRIPTION\n-----------\nRun `git foo` to see linkgit:git-bar[1] and\n"
      "link:https://example.com[the site]. Use *bold*, _emph_ and git-web{litdd}browse.\n\n"
      "------------\n$ git foo --dropped\n------------\n\n"
      "[NOTE]\n====\nKept ``quoted'' text.\n====\n\n"
      "--quiet::\n\tBe quiet.\n+\nMore about quiet.\nendif::something[]\n";
  EXPECT_EQ(extract_text(TextFormat::asciidoc, src),
            "git-foo(1)\n\nNAME\n\ngit-foo - Do the foo thing\n\nDESCRIPTION\n\n"
            "Run git foo to see git-bar and\nthe site. Use bold, emph and git-web--browse.\n\n"
            "Kept \"quoted\" text.\n\n--quiet\nBe quiet.\nMore about quiet.");
}

TEST(Extract, Pod) {
  const char* src =
      "Text before the first command is not POD.\n\n=pod\n\n=head1 NAME\n\n"
      "B<perlfoo> - I<about> C<< $a->b >> and C<E<lt>fooE<gt>>\n\n=over 4\n\n=item * First\n\n"
      "Text with L<perlsyn/\"For Loops\">, L<the docs|perlpod>, L<perlfunc>, F<file.txt>, X<index>S<non breaking>\n"
      "and E<233>t E<eacute> E<0x263A>.\n\n=back\n\n    verbatim code dropped\n\n"
      "=begin html\n\n<p>dropped</p>\n\n=end html\n\n=for comment dropped\n\n=cut\n\nsub code { dropped }\n\n"
      "=head2 Back\n\nDone.\n";
  EXPECT_EQ(extract_text(TextFormat::pod, src),
            "NAME\n\nperlfoo - about $a->b and <foo>\n\nFirst\n\n"
            "Text with For Loops in perlsyn, the docs, perlfunc, file.txt, non breaking\n"
            "and \xc3\xa9t \xc3\xa9 \xe2\x98\xba.\n\nBack\n\nDone.");
}

TEST(Extract, Info) {
  const std::string src =
      "This is test.info, produced by makeinfo.\n\nINFO-DIR-SECTION Test\n"
      "\x1f\nFile: test.info,  Node: Top,  Next: Intro,  Up: (dir)\n\nTest Manual\n***********\n\n"
      "This is the *note Intro:: node, see *note the details: Details, for more.\n"
      "Also (*note (other)Node::).\n\n* Menu:\n\n* Intro::      The introduction.\n"
      "\x1f\nFile: test.info,  Node: Intro,  Prev: Top,  Up: Top\n\n1 Intro\n=======\n\nPlain text here.\n"
      "\x1f\nTag Table:\nNode: Top\x7f" "89\n\x1f\nEnd Tag Table\n";
  EXPECT_EQ(extract_text(TextFormat::info, src),
            "Test Manual\n\nThis is the Intro node, see the details, for more.\nAlso (Node).\n\n1 Intro\n\nPlain text here.");
}

TEST(Extract, Dictd) {
  const char* src =
      "00-database-dictfmt-1.13.0\nhttp://example.com/dict.txt\n00-database-short\n     The Test Dictionary\n"
      "The original data is available from:\n     http://example.com/dict.txt\n\n"
      "The original data was distributed with the notice shown below. No\nadditional restrictions are claimed.\n\n"
      "ABASEMENT, n.  A decent and customary mental attitude in the presence\nof wealth of power.\n\n"
      "    Poor Isabella's Dead, whose abdication\n    Set all tongues wagging.\n"
      "                                                    G.J.\n\n"
      "hacker\n /hak'r/, n.\n\n    A person who enjoys {exploring} the details.\n    [{Jargon File}]\n\n"
      "    (2014-11-27)\n    \xe2\x94\x8c\xe2\x94\x80\xe2\x94\x90\n    \xe2\x94\x82x\xe2\x94\x82 and\xc2\xa0nbsp\n"
      "    The end.\nzork\n   Entry run on after a sentence.\n abcdefghijklmnopqrstuvwxyz\n";
  EXPECT_EQ(extract_text(TextFormat::dictd, src),
            "ABASEMENT, n. A decent and customary mental attitude in the presence\nof wealth of power.\n"
            "Poor Isabella's Dead, whose abdication\nSet all tongues wagging.\nG.J.\n\n"
            "hacker\n/hak'r/, n.\nA person who enjoys exploring the details.\nx and nbsp\nThe end.\n\n"
            "zork\nEntry run on after a sentence.");
}

TEST(Extract, Fortune) {
  EXPECT_EQ(extract_text(TextFormat::fortune,
                         "First fortune.\n%\nA poem line one\n  line two\n\nafter a blank in the same fortune\n%\n%\nLast.\n%\n"),
            "First fortune.\n\nA poem line one\nline two\nafter a blank in the same fortune\n\nLast.");
}

TEST(Extract, VimHelp) {
  const char* src =
      "*test.txt*\tFor Vim version 9.0.  Last change: 2022 Jan 01\n\n"
      "==============================================================================\n"
      "1. Intro\t\t\t\t\t\t*test-intro*\n\n"
      "Use |:help| to read *about-tags* here; 2*3*4 is no tag. Example: >\n\t:set tw=78\n\n\t:echo \"x\"\n<\n"
      "Back to prose after the example.\nAnother example: >vim\n\tlet x = 1\nNon-indented line ends it.\n"
      "HEADING ~\n\t\t\t\t\t\t\t*tag1* *tag2*\n vim:tw=78:ts=8:noet:ft=help:norl:\n";
  EXPECT_EQ(extract_text(TextFormat::vim_help, src),
            "1. Intro\n\nUse :help to read about-tags here; 2*3*4 is no tag. Example:\n\n"
            "Back to prose after the example.\nAnother example:\n\nNon-indented line ends it.\nHEADING");
}

TEST(Extract, CodeKeepsLinesAndIndentation) {
  EXPECT_EQ(extract_text(TextFormat::code,
                         "\n\n// caf\xe9\r\nint main() {  \r\n\treturn 0;\t\n}\n\n\n\n\nfoo\n\n\nbar\n\n"),
            "// caf\xc3\xa9\nint main() {\n\treturn 0;\n}\n\nfoo\n\n\nbar");
}

TEST(Extract, BibleBothOutputForms) {
  const char* plain =
      "\nGenesis 1\n\n  1 In the beginning.\n  2 And the earth was\nwithout form.\n\nGenesis 2\n\n  1 Thus the heavens.\n"
      "\n1 Samuel 1\n\n  1 Now there was a certain man\nof Ramathaimzophim.\n";
  const char* formatted =
      "Ge1:1 In the beginning.\nGe1:2 And the earth was without form.\nGe2:1 Thus the heavens.\n"
      "1Sm1:1 Now there was a certain man of Ramathaimzophim.\n";
  const std::string want =
      "In the beginning. And the earth was without form.\n\nThus the heavens.\n\n"
      "Now there was a certain man of Ramathaimzophim.";
  EXPECT_EQ(extract_bible_kjv(plain), want);
  EXPECT_EQ(extract_bible_kjv(formatted), want);
}

TEST(Extract, GunzipRoundTripAndMembers) {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "line " + std::to_string(i) + " of some text\n";
  const std::string gz = gzip_bytes(text);
  EXPECT_TRUE(looks_gzipped(gz));
  EXPECT_FALSE(looks_gzipped(text));
  EXPECT_FALSE(looks_gzipped("\x1f"));
  EXPECT_EQ(gunzip(gz), text);
  EXPECT_EQ(gunzip(gzip_bytes("one ") + gzip_bytes("two")), "one two");  // concatenated members, as gzip writes
  EXPECT_EQ(gunzip(gzip_bytes("")), "");
  // A zlib (not gzip) stream is accepted too.
  std::string z(compressBound(text.size()), '\0');
  uLongf n = z.size();
  ASSERT_EQ(compress2((Bytef*)z.data(), &n, (const Bytef*)text.data(), text.size(), 6), Z_OK);
  z.resize(n);
  EXPECT_EQ(gunzip(z), text);
}

TEST(Extract, GunzipRejectsBadData) {
  std::string text(100000, 'x');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = (char)('a' + i % 26);
  const std::string gz = gzip_bytes(text);
  for (size_t cut : {gz.size() - 1, gz.size() - 8, gz.size() / 2, size_t(12)}) {
    const std::string msg = error_of([&] { gunzip(gz.substr(0, cut)); });
    EXPECT_NE(msg.find("cut short"), std::string::npos) << "cut at " << cut << ": " << msg;
  }
  std::string bad_crc = gz;
  bad_crc[gz.size() - 6] = (char)~bad_crc[gz.size() - 6];  // the CRC-32 in the trailer
  const std::string crc_msg = error_of([&] { gunzip(bad_crc); });
  EXPECT_NE(crc_msg.find("corrupt data (incorrect data check)"), std::string::npos) << crc_msg;
  // Damage inside the deflate data: the decoder may see bad codes or a stream that never ends; both say so.
  std::string corrupt = gz;
  for (size_t i = gz.size() / 3; i < gz.size() / 3 + 16; ++i) corrupt[i] = (char)~corrupt[i];
  const std::string corrupt_msg = error_of([&] { gunzip(corrupt); });
  EXPECT_NE(corrupt_msg.find("corrupt"), std::string::npos) << corrupt_msg;
  EXPECT_NE(error_of([] { gunzip("plain text, not gzip"); }).find("corrupt"), std::string::npos);
  EXPECT_NE(error_of([] { gunzip(""); }), "");
  // The cap: exactly the size passes, one byte less is refused.
  EXPECT_EQ(gunzip(gz, text.size()).size(), text.size());
  const std::string msg = error_of([&] { gunzip(gz, text.size() - 1); });
  EXPECT_NE(msg.find("at most"), std::string::npos) << msg;
  const std::string bomb = gzip_bytes(std::string(size_t(8) << 20, '\0'));  // 8 MiB of zeros in ~8 KB
  EXPECT_NE(error_of([&] { gunzip(bomb, 1 << 20); }), "");
}

// Random bytes weighted towards every format's markup characters, sometimes behind a format's opening.
TEST(Extract, SurvivesRandomBytes) {
  std::mt19937 rng(1234);
  const std::string alphabet = "<>*`:_|{}[]=\\-.%~'\"/!#+ \t\n\n\n\x1f\x7f\b\r\xc2\xa0\xe2\x94\x80\xff\xc3" "aZ09E<C<<L<X<";
  const char* openings[] = {"", "=pod\n\n", "\x1f\nFile: x,  Node: Top\n\n", ".. note::\n   ", "linkgit:",
                            "*note ", "00-database-short\n", ">\n\t", "``", "Ge1:1 ", "\nGenesis 1\n\n  1 "};
  int n_gunzip_errors = 0;
  for (int i = 0; i < 500; ++i) {
    std::string s = openings[rng() % std::size(openings)];
    const size_t len = rng() % 300;
    for (size_t k = 0; k < len; ++k)
      s += rng() % 4 == 0 ? (char)(rng() % 256) : alphabet[rng() % alphabet.size()];
    for (TextFormat f : {TextFormat::plain, TextFormat::html, TextFormat::rest, TextFormat::pod, TextFormat::asciidoc,
                         TextFormat::info, TextFormat::dictd, TextFormat::fortune, TextFormat::vim_help, TextFormat::code}) {
      std::string out;
      ASSERT_NO_THROW(out = extract_text(f, s)) << text_format_name(f) << " case " << i;
      ASSERT_TRUE(is_valid_utf8(out)) << text_format_name(f) << " case " << i;
    }
    ASSERT_TRUE(is_valid_utf8(extract_bible_kjv(s))) << "bible case " << i;
    try {
      gunzip(i % 2 ? s : "\x1f\x8b\x08" + s, 1 << 20);
    } catch (const Error&) {
      ++n_gunzip_errors;
    }
  }
  EXPECT_GT(n_gunzip_errors, 490);  // random bytes are (almost) never a valid stream
}

// Deep nesting and long runs of openers must neither recurse without bound nor go quadratic.
TEST(Extract, PathologicalNestingIsBounded) {
  std::string pod = "=pod\n\n", rest, adoc;
  for (int i = 0; i < 20000; ++i) pod += "B<C<< ";
  for (int i = 0; i < 50000; ++i) rest += ":x:`*`` ";
  for (int i = 0; i < 50000; ++i) adoc += "'*_`";
  EXPECT_TRUE(is_valid_utf8(extract_text(TextFormat::pod, pod)));
  EXPECT_TRUE(is_valid_utf8(extract_text(TextFormat::rest, rest)));
  EXPECT_TRUE(is_valid_utf8(extract_text(TextFormat::asciidoc, adoc)));
  EXPECT_TRUE(is_valid_utf8(extract_text(TextFormat::info, "\x1f\nFile: x\n" + std::string(200000, '*'))));
}

std::string read_installed(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  std::string b = ss.str();
  return looks_gzipped(b) ? gunzip(b) : b;
}

struct RealFile {
  TextFormat format;
  const char* path;
  std::vector<std::string> not_in_output;  // markup that must be gone
};

TEST(Extract, RealInstalledFiles) {
  const std::string py = "/usr/share/doc/python3.11/html/", pod = "/usr/share/perl/5.36.0/pod/";
  const std::vector<RealFile> files = {
      {TextFormat::plain, "/usr/share/common-licenses/GPL-3", {"\r", "\t"}},
      {TextFormat::html, "/usr/share/doc/python3.11/html/tutorial/controlflow.html", {"<p>", "<div", "</", "&amp;", "<title>"}},
      {TextFormat::rest, "/usr/share/doc/python3.11/html/_sources/tutorial/controlflow.rst.txt", {":ref:`", ":keyword:`", "``", "\n.. ", "::\n", "====="}},
      {TextFormat::rest, "/usr/share/doc/python3.11/html/_sources/library/functions.rst.txt", {":func:`", ":class:`", ".. function::", ">>>", "+----"}},
      {TextFormat::pod, "/usr/share/perl/5.36.0/pod/perlintro.pod", {"=head", "=item", "=over", "C<", "L<", "B<", "E<"}},
      {TextFormat::pod, "/usr/share/perl/5.36.0/pod/perlsyn.pod", {"=head", "=item", "C<", "I<", "X<"}},
      {TextFormat::asciidoc, "/usr/share/doc/git-doc/git-add.txt", {"linkgit:", "include::", "\n----", "\n====", "::\n", "{litdd}"}},
      {TextFormat::asciidoc, "/usr/share/doc/git-doc/gittutorial.txt", {"linkgit:", "\n----", "[[", "``"}},
      {TextFormat::info, "/usr/share/info/autoconf.info.gz", {"\x1f", "* Menu:", "*note", "*Note", "Tag Table", "File: autoconf.info", "\n****"}},
      {TextFormat::info, "/usr/share/info/grep.info.gz", {"\x1f", "* Menu:", "*note", "Node: "}},
      {TextFormat::dictd, "/usr/share/dictd/devil.dict.dz", {"00-database", "{", "}", "abcdefghijklmnopqrstuvwxyz"}},
      {TextFormat::dictd, "/usr/share/dictd/jargon.dict.dz", {"00-database", "{", "\xe2\x94", "\xe2\x95", "\xc2\xa0"}},
      {TextFormat::fortune, "/usr/share/games/fortunes/fortunes", {"\n%\n", "\n%"}},
      {TextFormat::fortune, "/usr/share/games/fortunes/literature", {"\n%\n", "\b"}},
      {TextFormat::vim_help, "/usr/share/vim/vim90/doc/usr_02.txt", {"vim:tw=", "*usr_02.txt*", "|usr_03.txt|", "\n====", "+-----"}},
      {TextFormat::vim_help, "/usr/share/vim/vim90/doc/options.txt", {"vim:tw=", "*'autoindent'*", "\n----", "\n===="}},
      {TextFormat::code, "/usr/lib/python3.11/json/__init__.py", {"\r"}},
  };
  int n_found = 0;
  for (const RealFile& rf : files) {
    const std::string bytes = read_installed(rf.path);
    if (bytes.empty()) continue;
    ++n_found;
    const std::string out = extract_text(rf.format, bytes);
    EXPECT_GT(out.size(), bytes.size() / 4) << rf.path;  // prose is most of every one of these files
    EXPECT_TRUE(is_valid_utf8(out)) << rf.path;
    for (const std::string& marker : rf.not_in_output)
      EXPECT_EQ(out.find(marker), std::string::npos) << rf.path << " still has \"" << marker << "\" at "
                                                       << out.substr(out.find(marker) < 40 ? 0 : out.find(marker) - 40, 80);
    if (rf.format == TextFormat::code) {
      EXPECT_NE(out.find("\n    "), std::string::npos) << "indentation kept";
    } else {
      EXPECT_EQ(out.find("\n\n\n"), std::string::npos) << rf.path;
    }
  }
  if (n_found == 0) GTEST_SKIP() << "none of the documentation packages is installed";
}

TEST(Extract, RealBibleProgramOutput) {
  FILE* p = std::fopen("/usr/bin/bible", "r");
  if (!p) GTEST_SKIP() << "bible-kjv is not installed";
  std::fclose(p);
  for (const char* cmd : {"/usr/bin/bible gen1:1-gen3:24 2>/dev/null", "/usr/bin/bible -f gen1:1-gen3:24 2>/dev/null"}) {
    FILE* pipe = popen(cmd, "r");
    ASSERT_NE(pipe, nullptr);
    std::string raw;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) raw.append(buf, n);
    pclose(pipe);
    if (raw.empty()) GTEST_SKIP() << "bible printed nothing";
    const std::string out = extract_bible_kjv(raw);
    EXPECT_EQ(split_paragraphs(out).size(), 3u) << cmd;  // Genesis 1, 2 and 3
    EXPECT_EQ(out.rfind("In the beginning God created the heaven and the earth. And the earth", 0), 0u) << cmd;
    EXPECT_EQ(out.find("Genesis"), std::string::npos) << cmd;
    EXPECT_EQ(out.find("Ge1:"), std::string::npos) << cmd;
    EXPECT_EQ(out.find("  "), std::string::npos) << cmd;
    EXPECT_NE(out.find("the first day. And God said"), std::string::npos) << cmd;  // verse numbers are gone
  }
}

}  // namespace
}  // namespace heirloom
