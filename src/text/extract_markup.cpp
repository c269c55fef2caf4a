// Lightweight-markup extractors: reStructuredText (Python's _sources/*.rst.txt) and AsciiDoc (git-doc's
// *.txt); POD is in extract_pod.cpp. Each is a line pass (which blocks are prose) followed by an inline
// pass (markup around words). See extract.h for the contract.
// Invariants: inline markup never spans a blank line and an opener without a closer stays literal, so a
// stray '*' or '`' cannot swallow the rest of a file; recursion into nested markup is depth-capped.
// Deliberately not done: tables, code samples (literal, listing and verbatim blocks) and metadata — they are
// dropped, not rendered; references are reduced to their visible text, never resolved.
#include <cctype>
#include <cstring>
#include <iterator>

#include "text/extract_detail.h"

namespace heirloom::extract_detail {

namespace {

constexpr size_t npos = std::string_view::npos;
constexpr int kMaxDepth = 16;

bool in_set(const char* names[], size_t n, std::string_view name) {
  for (size_t i = 0; i < n; ++i)
    if (name == names[i]) return true;
  return false;
}

// ---------------------------------------------------------------- reStructuredText

// What happens to a directive's block. Admonitions are prose (their text on the directive line too);
// version notes are prose after the version number; the Python description directives (function, class,
// ...) hold most of the library reference in their bodies, so their signature line goes and the body
// stays. Everything else (seealso's link lists, code, index, toctree, images, includes, tables, metadata)
// is dropped whole.
enum class RestDirective { drop, admonition, version, signature };

RestDirective rest_directive_kind(std::string_view name) {
  static const char* admonitions[] = {"note", "warning", "tip", "important", "caution", "attention", "danger",
                                      "hint", "error", "admonition", "topic", "sidebar", "impl-detail"};
  static const char* versions[] = {"versionadded", "versionchanged", "deprecated", "deprecated-removed"};
  static const char* signatures[] = {"function", "method", "class", "attribute", "data", "exception", "decorator",
                                     "decoratormethod", "classmethod", "staticmethod", "abstractmethod",
                                     "coroutinemethod", "coroutinefunction", "awaitablemethod", "awaitablefunction",
                                     "describe", "object", "cmdoption", "option", "envvar", "opcode", "pdbcommand",
                                     "property", "only"};
  if (in_set(admonitions, std::size(admonitions), name)) return RestDirective::admonition;
  if (in_set(versions, std::size(versions), name)) return RestDirective::version;
  if (in_set(signatures, std::size(signatures), name)) return RestDirective::signature;
  // Domain-qualified description directives (c:function, py:method, cpp:class) document an object too.
  const size_t colon = name.find(':');
  if (colon != npos && colon > 0 && colon + 1 < name.size()) return RestDirective::signature;
  return RestDirective::drop;
}

// ".. name:: args" → name and args; an empty name means a comment, a target or a substitution definition.
std::string_view rest_directive(std::string_view t, std::string_view* args) {
  if (t.size() < 4 || !is_alnum(t[3])) return {};
  const size_t e = t.find("::", 3);
  if (e == npos) return {};
  const std::string_view name = t.substr(3, e - 3);
  for (char c : name)
    if (!is_alnum(c) && !std::strchr("-_:+.", c)) return {};
  *args = trim(t.substr(e + 2));
  return name;
}

// ":noindex:", ":platform: Unix" — directive options, not prose.
bool is_rest_option(std::string_view t) {
  if (t.size() < 3 || t[0] != ':') return false;
  size_t i = 1;
  while (i < t.size() && (is_alnum(t[i]) || t[i] == '-' || t[i] == '_')) ++i;
  return i > 1 && i < t.size() && t[i] == ':' && (i + 1 == t.size() || t[i + 1] == ' ');
}

// ":author: Larry Hastings", ":tocdepth: 2": document metadata fields, not prose.
bool is_rest_metadata(std::string_view t) {
  static const char* fields[] = {"author", "authors", "organization", "contact", "address", "version", "revision",
                                 "status", "date", "copyright", "tocdepth", "orphan", "nosearch", "release",
                                 "audience", "maintainer", "platform", "synopsis", "module", "moduleauthor"};
  if (!is_rest_option(t)) return false;
  const size_t e = t.find(':', 1);
  std::string lower(t.substr(1, e - 1));
  for (char& c : lower) c = (char)std::tolower((unsigned char)c);
  return in_set(fields, std::size(fields), lower);
}

bool is_rest_table_line(std::string_view t) {
  if (t.size() >= 2 && t.front() == '|' && t.back() == '|') return true;  // grid table row
  if (t.size() >= 3 && (t[0] == '+' || t[0] == '=')) {                     // grid border, simple table border
    bool dash = false;
    for (char c : t) {
      if (!std::strchr("+-=:| ", c)) return false;
      dash |= c == '-' || c == '=';
    }
    return dash;
  }
  return false;
}

// `text <target>` → text, `!name` → name (no link), `~a.b.c` → c (what Sphinx shows).
std::string rest_role_text(std::string_view c) {
  if (!c.empty() && c.back() == '>') {
    const size_t lt = c.rfind('<');
    if (lt != npos && lt > 0 && (c[lt - 1] == ' ' || c[lt - 1] == '\n')) {
      const std::string_view text = trim(c.substr(0, lt));
      if (!text.empty()) return std::string(text);
      c = c.substr(lt + 1, c.size() - lt - 2);
    }
  }
  if (!c.empty() && c[0] == '!') c.remove_prefix(1);
  if (!c.empty() && c[0] == '~') {
    c.remove_prefix(1);
    const size_t dot = c.rfind('.');
    if (dot != npos && dot + 1 < c.size()) c = c.substr(dot + 1);
  }
  return std::string(c);
}

bool emphasis_opens(std::string_view s, size_t i, size_t width) {
  if (i > 0 && !is_space(s[i - 1]) && s[i - 1] != '\n' && !std::strchr("([{<'\"-/:", s[i - 1])) return false;
  return i + width < s.size() && !is_space(s[i + width]) && s[i + width] != '\n' && s[i + width] != s[i];
}
// The first closer after `from` with no blank before it and no letter after it; npos when there is none.
size_t emphasis_close(std::string_view s, size_t from, std::string_view closer) {
  const size_t e = find_in_paragraph(s, from, closer, 1000);
  if (e == npos || e == from || is_space(s[e - 1]) || s[e - 1] == '\n') return npos;
  if (e + closer.size() < s.size() && is_alnum(s[e + closer.size()])) return npos;
  return e;
}

std::string rest_inline(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {  // "\ " is an invisible separator; "\*" a literal star
      const char n = s[i + 1];
      if (n == ' ' || n == '\n') { i += 2; continue; }
      if ((unsigned char)n < 0x80 && !is_alnum(n)) { out += n; i += 2; continue; }
    }
    if (c == '`' && i + 1 < s.size() && s[i + 1] == '`') {  // ``literal``
      const size_t e = find_in_paragraph(s, i + 2, "``");
      if (e != npos && e > i + 2) { out += s.substr(i + 2, e - i - 2); i = e + 2; continue; }
    }
    if (c == ':') {  // :role:`text`
      size_t j = i + 1;
      while (j < s.size() && (is_alnum(s[j]) || std::strchr("-_.:+", s[j]))) ++j;
      if (j > i + 2 && s[j - 1] == ':' && j < s.size() && s[j] == '`') {
        const size_t e = find_in_paragraph(s, j + 1, "`");
        if (e != npos && e > j + 1) { out += rest_role_text(s.substr(j + 1, e - j - 1)); i = e + 1; continue; }
      }
    }
    if (c == '`') {  // `text`, `text <url>`_, `name`__
      const size_t e = find_in_paragraph(s, i + 1, "`");
      if (e != npos && e > i + 1) {
        out += rest_role_text(s.substr(i + 1, e - i - 1));
        i = e + 1;
        while (i < s.size() && s[i] == '_' && i < e + 3) ++i;
        continue;
      }
    }
    if (c == '*' && i + 1 < s.size() && s[i + 1] == '*' && emphasis_opens(s, i, 2)) {  // **strong**
      const size_t e = emphasis_close(s, i + 2, "**");
      if (e != npos) { out += s.substr(i + 2, e - i - 2); i = e + 2; continue; }
    }
    if (c == '*' && emphasis_opens(s, i, 1)) {  // *emphasis*
      const size_t e = emphasis_close(s, i + 1, "*");
      if (e != npos) { out += s.substr(i + 1, e - i - 1); i = e + 1; continue; }
    }
    if (c == '[') {  // footnote and citation references [1]_ [#]_ [#name]_
      const size_t e = s.find(']', i);
      if (e != npos && e < i + 40 && e + 1 < s.size() && s[e + 1] == '_' && s.substr(i, e - i).find_first_of(" \n") == npos) {
        while (!out.empty() && out.back() == ' ') out.pop_back();
        i = e + 2;
        continue;
      }
    }
    out += c;
    ++i;
  }
  return out;
}

// ---------------------------------------------------------------- AsciiDoc

// The attribute references git's documentation uses for characters AsciiDoc would otherwise interpret.
const char* asciidoc_attribute(std::string_view name) {
  static const struct { const char* name; const char* text; } kAttrs[] = {
      {"litdd", "--"}, {"caret", "^"}, {"tilde", "~"}, {"asterisk", "*"}, {"plus", "+"}, {"startsb", "["},
      {"endsb", "]"}, {"vbar", "|"}, {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"apos", "'"}, {"quot", "\""},
      {"nbsp", " "}, {"sp", " "}, {"empty", ""}, {"backslash", "\\"}, {"two-colons", "::"}, {"two-semicolons", ";;"}};
  for (const auto& a : kAttrs)
    if (name == a.name) return a.text;
  return nullptr;
}

std::string asciidoc_inline(std::string_view s, int depth);

// "linkgit:git-foo[1]" → git-foo; "link:url[text]" and "https://url[text]" → text (or the url).
bool asciidoc_link(std::string_view s, size_t& i, std::string& out, int depth) {
  const std::string_view rest = s.substr(i);
  const bool gitlink = starts_with(rest, "linkgit:");
  const bool link = starts_with(rest, "link:");
  if (!gitlink && !link && !starts_with(rest, "https://") && !starts_with(rest, "http://") && !starts_with(rest, "ftp://") &&
      !starts_with(rest, "mailto:"))
    return false;
  if (i > 0 && is_alnum(s[i - 1])) return false;
  const size_t start = i + (gitlink ? 8 : link ? 5 : 0);
  size_t j = start;
  while (j < s.size() && s[j] != '[' && !is_space(s[j]) && s[j] != '\n') ++j;
  if (j >= s.size() || s[j] != '[') {
    if (gitlink || link) return false;
    out += s.substr(i, j - i);  // a bare URL: keep it, but do not read '_' or '*' inside it as markup
    i = j;
    return true;
  }
  const size_t e = find_in_paragraph(s, j + 1, "]", 400);
  if (e == npos) return false;
  const std::string_view target = s.substr(start, j - start), text = s.substr(j + 1, e - j - 1);
  out += asciidoc_inline(gitlink || text.empty() ? target : text, depth + 1);  // "git-web{litdd}browse" 
  i = e + 1;
  return true;
}

std::string asciidoc_inline(std::string_view s, int depth) {
  if (depth >= kMaxDepth) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if ((c == 'l' || c == 'h' || c == 'f' || c == 'm') && asciidoc_link(s, i, out, depth)) continue;
    if (c == '{') {
      const size_t e = s.find('}', i);
      if (e != npos && e < i + 32) {
        if (const char* text = asciidoc_attribute(s.substr(i + 1, e - i - 1))) { out += text; i = e + 1; continue; }
      }
    }
    if (c == '<' && i + 1 < s.size() && s[i + 1] == '<') {  // <<anchor,text>> cross reference
      const size_t e = find_in_paragraph(s, i + 2, ">>", 200);
      if (e != npos && e > i + 2) {
        const std::string_view ref = s.substr(i + 2, e - i - 2);
        const size_t comma = ref.find(',');
        out += trim(comma == npos ? ref : ref.substr(comma + 1));
        i = e + 2;
        continue;
      }
    }
    if (c == '`' && i + 1 < s.size() && s[i + 1] == '`') {  // ``quoted'' → "quoted"
      const size_t e = find_in_paragraph(s, i + 2, "''", 1000);
      if (e != npos && e > i + 2) { out += '"' + asciidoc_inline(s.substr(i + 2, e - i - 2), depth + 1) + '"'; i = e + 2; continue; }
    }
    if (c == '[' && i + 1 < s.size() && s[i + 1] == '[') {  // [[anchor]] inside a line
      const size_t e = find_in_paragraph(s, i + 2, "]]", 200);
      if (e != npos) { i = e + 2; continue; }
    }
    if (c == '`' && i + 1 < s.size() && !is_space(s[i + 1]) && s[i + 1] != '\n') {  // `monospace`: literal
      const size_t e = find_in_paragraph(s, i + 1, "`", 1000);
      if (e != npos && e > i + 1) { out += s.substr(i + 1, e - i - 1); i = e + 1; continue; }
    }
    if ((c == '\'' || c == '*' || c == '_') && emphasis_opens(s, i, 1)) {
      const size_t e = emphasis_close(s, i + 1, std::string_view(&s[i], 1));
      if (e != npos) { out += asciidoc_inline(s.substr(i + 1, e - i - 1), depth + 1); i = e + 1; continue; }
    }
    out += c;
    ++i;
  }
  return out;
}

bool is_asciidoc_attribute_line(std::string_view t) {
  if (t.size() < 3 || t[0] != ':') return false;
  size_t i = 1;
  while (i < t.size() && (is_alnum(t[i]) || t[i] == '-' || t[i] == '_' || t[i] == '!')) ++i;
  return i > 1 && i < t.size() && t[i] == ':' && (i + 1 == t.size() || t[i + 1] == ' ');
}

}  // namespace

std::string extract_rest(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  int skip_indent = -1;   // ≥ 0: dropping blank lines and lines indented deeper than this
  int head_indent = -1;   // ≥ 0: just after a kept directive's line, where options (and signatures) follow
  bool head_signature = false, doctest = false;
  for (const std::string_view line : split_lines(s)) {
    const bool blank = is_blank(line);
    const int ind = indent_of(line);
    if (skip_indent >= 0) {
      if (blank || ind > skip_indent) continue;
      skip_indent = -1;
      out += '\n';  // the dropped block swallowed the blank line that ended the paragraph before it
    }
    if (blank) {
      doctest = false;
      head_indent = -1;
      out += '\n';
      continue;
    }
    if (doctest) continue;
    const std::string_view t = trim(line);
    if (head_indent >= 0) {
      if (ind > head_indent && (head_signature || is_rest_option(t))) continue;
      head_indent = -1;
    }
    if (t == ".." || starts_with(t, ".. ")) {
      std::string_view args;
      const std::string_view name = rest_directive(t, &args);
      const RestDirective kind = name.empty() ? RestDirective::drop : rest_directive_kind(name);
      if (kind == RestDirective::drop) { skip_indent = ind; continue; }
      head_indent = ind;
      head_signature = kind == RestDirective::signature;
      if (kind == RestDirective::version)  // drop the version number(s), keep any text after them
        for (int n = name == "deprecated-removed" ? 2 : 1; n > 0 && !args.empty(); --n) {
          const size_t sp = args.find(' ');
          args = sp == npos ? std::string_view() : trim(args.substr(sp));
        }
      if (kind != RestDirective::signature && !args.empty()) { out += args; out += '\n'; }
      continue;
    }
    if (starts_with(t, ">>>")) { doctest = true; continue; }
    if (ind == 0 && is_rest_metadata(t)) continue;
    if (is_rule_line(t, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", 3)) continue;  // heading adornment, transition
    if (is_rest_table_line(t)) continue;
    if (ends_with(t, "::")) {  // "text::" introduces a literal block: keep "text:", drop the block
      std::string_view text = t.substr(0, t.size() - 2);
      if (!text.empty() && !is_space(text.back())) { out += text; out += ":\n"; }
      else if (!trim(text).empty()) { out += trim(text); out += '\n'; }
      skip_indent = ind;
      continue;
    }
    out += t;
    out += '\n';
  }
  return rest_inline(out);
}

std::string extract_asciidoc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::string_view block_end;  // inside a listing/literal/passthrough/comment block: its closing line
  std::string_view prev;       // the previous line when it was text (a possible section title)
  bool prev_prev_blank = true;  // was the line before `prev` blank (titles stand after a blank line)?
  bool last_blank = true;
  for (const std::string_view line : split_lines(s)) {
    const std::string_view t = trim(line);
    const bool was_blank = last_blank;
    last_blank = t.empty();
    std::string_view title = prev;
    const bool title_ok = prev_prev_blank;
    prev_prev_blank = was_blank;
    prev = {};
    if (!block_end.empty()) {
      if (t == block_end) block_end = {};
      continue;
    }
    if (t.empty()) { out += '\n'; continue; }
    if (!title.empty() && title_ok && is_rule_line(t, "=-~^+", 2)) {
      const long d = (long)n_code_points(t) - (long)n_code_points(title);
      if (d >= -2 && d <= 2) { out += '\n'; continue; }  // the title just written is a paragraph of its own
    }
    if (is_rule_line(t, "-.+/", 4)) { block_end = t; continue; }  // code, literal, passthrough, comment
    if (is_rule_line(t, "=*_", 4) || t == "--" || t == "+" || starts_with(t, "|===")) continue;
    if (starts_with(t, "//")) continue;  // comment line
    if (line[0] == '[' && t.back() == ']') continue;  // [verse], [NOTE], [[anchor]], [source,c]
    if (is_asciidoc_attribute_line(t)) continue;
    if (starts_with(t, "include::") || starts_with(t, "ifdef::") || starts_with(t, "ifndef::") ||
        starts_with(t, "ifeval::") || starts_with(t, "endif::"))
      continue;
    std::string_view text = t;
    if (text[0] == '=') {  // "== Title =="
      size_t k = 0;
      while (k < text.size() && text[k] == '=') ++k;
      if (k < text.size() && text[k] == ' ') {
        text = trim(text.substr(k));
        while (!text.empty() && text.back() == '=') text.remove_suffix(1);
        text = trim(text);
        out += text;
        out += "\n\n";
        continue;
      }
    } else if (text.size() > 1 && text[0] == '.' && is_alnum(text[1])) {
      text.remove_prefix(1);  // ".Block title"
    }
    for (std::string_view mark : {":::", "::", ";;"})  // "term::" of a labelled list
      if (ends_with(text, mark) && text.size() > mark.size()) { text = trim(text.substr(0, text.size() - mark.size())); break; }
    out += text;
    out += '\n';
    prev = t;
  }
  return asciidoc_inline(out, 0);
}

}  // namespace heirloom::extract_detail
