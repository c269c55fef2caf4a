// Perl's POD (perl-doc's /usr/share/perl/5.*/pod/*.pod) → prose. See extract.h for the contract.
// Command paragraphs go except the text of =headN and =item; verbatim (indented) paragraphs, =begin/=end
// blocks, =for paragraphs and everything between =cut and the next command are dropped. Interior sequences
// (B<> I<> C<> F<> S<> L<> E<> X<> Z<>, nested, in the single or the "C<< … >>" form) become their text.
// Invariants: an unterminated sequence runs to the end of its paragraph, never further; nesting deeper
// than kMaxDepth is left as literal text, so recursion is bounded whatever the input.
// Deliberately not done: links are not resolved and =begin text blocks are dropped like any other format.
#include "text/extract_detail.h"

namespace heirloom::extract_detail {

namespace {

constexpr size_t npos = std::string_view::npos;
constexpr int kMaxDepth = 16;

const char* const kLatin1Names[96] = {
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo",
    "not", "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot",
    "cedil", "sup1", "ordm", "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",
    "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute",
    "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash",
    "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave", "aacute", "acirc", "atilde",
    "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc",
    "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml", "divide", "oslash", "ugrave",
    "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml"};

// E<...>: POD's escapes, named (HTML names) or numeric (decimal, 0x hex, 0 octal). Unknown ones vanish.
std::string pod_entity(std::string_view name) {
  static const struct { const char* name; uint32_t cp; } kNames[] = {
      {"lt", '<'}, {"gt", '>'}, {"sol", '/'}, {"verbar", '|'}, {"quot", '"'}, {"amp", '&'}, {"apos", '\''},
      {"euro", 0x20AC}, {"zwnj", 0x200C}, {"zwj", 0x200D}, {"ndash", 0x2013}, {"mdash", 0x2014},
      {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"hellip", 0x2026}};
  std::string out;
  name = trim(name);
  uint32_t cp = 0;
  if (!name.empty() && name[0] >= '0' && name[0] <= '9') {
    const int base = starts_with(name, "0x") || starts_with(name, "0X") ? 16 : name.size() > 1 && name[0] == '0' ? 8 : 10;
    for (size_t i = base == 16 ? 2 : 0; i < name.size() && cp <= 0x10FFFF; ++i) {
      const char c = name[i];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99;
      if (d >= base) { cp = 0; break; }
      cp = cp * base + d;
    }
  } else {
    for (const auto& n : kNames)
      if (name == n.name) cp = n.cp;
    for (int k = 0; k < 96 && !cp; ++k)
      if (name == kLatin1Names[k]) cp = 0xA0 + k;
  }
  if (cp == 0xAD) return out;  // soft hyphen
  append_code_point(out, cp);
  return out;
}

// An interior sequence opening at s[i] ("X<", "X<< "): sets the bracket count and where its content starts.
bool pod_opener(std::string_view s, size_t i, int* n, size_t* content) {
  if (i + 1 >= s.size() || s[i] < 'A' || s[i] > 'Z' || s[i + 1] != '<') return false;
  size_t j = i + 1;
  while (j < s.size() && s[j] == '<') ++j;
  const int k = (int)(j - i - 1);
  if (k >= 2 && j < s.size() && (is_space(s[j]) || s[j] == '\n')) {
    while (j < s.size() && (is_space(s[j]) || s[j] == '\n')) ++j;
    *n = k;
    *content = j;
  } else {
    *n = 1;  // "C<<x" without a blank is the single form with content "<x"
    *content = i + 2;
  }
  return true;
}

// Scans the content of a sequence with n brackets from `pos`; returns the index after its closer and sets
// *content_end. Unterminated sequences run to the end of the paragraph.
size_t pod_close(std::string_view s, size_t pos, int n, size_t* content_end, int depth) {
  for (size_t i = pos; i < s.size();) {
    if (n == 1 && s[i] == '>') { *content_end = i; return i + 1; }
    if (n > 1 && (is_space(s[i]) || s[i] == '\n')) {
      size_t j = i;
      while (j < s.size() && (is_space(s[j]) || s[j] == '\n')) ++j;
      if (s.size() - j >= (size_t)n && s.substr(j, n).find_first_not_of('>') == npos) { *content_end = i; return j + n; }
      i = j;
      continue;
    }
    int k;
    size_t c;
    if (depth < kMaxDepth && pod_opener(s, i, &k, &c)) {
      size_t ce;
      i = pod_close(s, c, k, &ce, depth + 1);
      continue;
    }
    ++i;
  }
  *content_end = s.size();
  return s.size();
}

std::string pod_render(std::string_view s, int depth);

// L<text|target> → text; L<name/"section"> → section in name; L</section> → section; L<name> → name.
std::string pod_link(std::string_view raw, int depth) {
  size_t bar = npos, slash = npos;
  for (size_t i = 0; i < raw.size();) {
    int k;
    size_t c, ce;
    if (pod_opener(raw, i, &k, &c)) { i = pod_close(raw, c, k, &ce, depth + 1); continue; }
    if (raw[i] == '|' && bar == npos) bar = i;
    if (raw[i] == '/' && slash == npos) slash = i;
    ++i;
  }
  if (bar != npos) return pod_render(raw.substr(0, bar), depth + 1);
  if (slash == npos || raw.find("://") != npos) return pod_render(raw, depth + 1);
  std::string_view sec = trim(raw.substr(slash + 1));
  if (sec.size() >= 2 && sec.front() == '"' && sec.back() == '"') sec = sec.substr(1, sec.size() - 2);
  std::string out = pod_render(sec, depth + 1);
  if (slash > 0) out += " in " + pod_render(raw.substr(0, slash), depth + 1);
  return out;
}

std::string pod_render(std::string_view s, int depth) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    int k;
    size_t c;
    if (depth < kMaxDepth && pod_opener(s, i, &k, &c)) {
      size_t ce;
      const size_t e = pod_close(s, c, k, &ce, depth + 1);
      std::string_view content = s.substr(c, ce - c);
      if (k > 1) content = trim(content);
      switch (s[i]) {
        case 'X': case 'Z': break;  // index entries and null codes print nothing
        case 'E': out += pod_entity(content); break;
        case 'L': out += pod_link(content, depth); break;
        default: out += pod_render(content, depth + 1);
      }
      i = e;
      continue;
    }
    out += s[i++];
  }
  return out;
}

}  // namespace

std::string extract_pod(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool in_pod = false, in_begin = false;
  const std::vector<std::string_view> lines = split_lines(s);
  for (size_t i = 0; i < lines.size();) {
    if (is_blank(lines[i])) { ++i; continue; }
    const size_t first = i;
    while (i < lines.size() && !is_blank(lines[i])) ++i;
    // The paragraph's lines are contiguous in s, so one view covers them.
    const char* b = lines[first].data();
    const std::string_view p(b, (size_t)(lines[i - 1].data() + lines[i - 1].size() - b));
    if (p.size() > 1 && p[0] == '=' && ((p[1] >= 'a' && p[1] <= 'z') || (p[1] >= 'A' && p[1] <= 'Z'))) {
      size_t k = 1;
      while (k < p.size() && (is_alnum(p[k]) || p[k] == '_')) ++k;
      const std::string_view cmd = p.substr(1, k - 1);
      std::string_view rest = trim(p.substr(k));
      if (cmd == "cut") { in_pod = false; continue; }
      in_pod = true;
      if (in_begin) { in_begin = cmd != "end"; continue; }
      if (cmd == "begin") { in_begin = true; continue; }
      if (cmd == "item" && !rest.empty() && rest[0] == '*' && (rest.size() == 1 || is_space(rest[1]) || rest[1] == '\n'))
        rest = trim(rest.substr(1));  // a bullet, not text
      if (starts_with(cmd, "head") || cmd == "item") {
        out += pod_render(rest, 0);
        out += "\n\n";
      }
      continue;  // =over, =back, =for, =encoding, =pod: nothing to print
    }
    if (!in_pod || in_begin || is_space(p[0])) continue;  // not POD, a =begin block, or verbatim code
    out += pod_render(p, 0);
    out += "\n\n";
  }
  return out;
}

}  // namespace heirloom::extract_detail
