// Extractors for structured documentation formats: GNU info (after gunzip), dictd databases (.dict after
// gunzip) and Vim help files. See extract.h for the contract.
// Invariants: the node, entry and example structure is found from line shapes alone, so any bytes give some
// output and never an error.
// Deliberately not done: dictd's .index is not read — entries are found from their headword lines, which is
// right for the installed dictionaries but would mis-split an entry whose body starts at the left margin
// after a blank line (that becomes two paragraphs, nothing is lost). Info menus, indices, the tag table
// and Vim's example blocks are dropped, not rendered.
#include <cstring>

#include "text/extract_detail.h"

namespace heirloom::extract_detail {

namespace {

constexpr size_t npos = std::string_view::npos;

// ---------------------------------------------------------------- info

// "*note Label::" → Label; "*note Label: (manual)Node." → Label. — the '.' or ',' ending a node name is
// also the sentence's punctuation, so it stays.
std::string info_xrefs(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '*' && i + 6 < s.size() && (s.compare(i, 5, "*note") == 0 || s.compare(i, 5, "*Note") == 0) &&
        (s[i + 5] == ' ' || s[i + 5] == '\n')) {
      size_t j = i + 5;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\n')) ++j;
      const size_t colon = find_in_paragraph(s, j, ":", 400);
      if (colon != npos && colon > j) {
        std::string_view label = s.substr(j, colon - j);
        if (colon + 1 < s.size() && s[colon + 1] == ':') {
          if (!label.empty() && label[0] == '(') {  // "(manual)Node": the node is what a reader sees
            const size_t close = label.find(')');
            if (close != npos && close + 1 < label.size()) label = label.substr(close + 1);
          }
          out += label;
          i = colon + 2;
          continue;
        }
        size_t e = colon + 1;
        while (e < s.size() && e < colon + 300 && !std::strchr(".,\t", s[e]) && s.compare(e, 2, "\n\n") != 0) ++e;
        if (e < s.size() && std::strchr(".,\t", s[e])) {
          out += label;
          i = e;
          continue;
        }
      }
    }
    out += s[i++];
  }
  return out;
}

std::string info_node_body(std::string_view body) {
  // The menu closes a node; after it come only menu entries (and, in the Top node, the detailed listing).
  size_t menu = starts_with(body, "* Menu:") ? 0 : body.find("\n* Menu:");
  if (menu == npos) menu = body.find("\n* menu:");
  if (menu != npos) body = body.substr(0, menu);
  std::string text;
  text.reserve(body.size());
  std::string_view prev;
  for (std::string_view line : split_lines(body)) {
    const std::string_view t = trim(line);
    // A heading underline is as long as its title; any line of 3+ such characters is a rule.
    if (is_rule_line(t, "*=-.", 1) && (t.size() >= 3 || n_code_points(t) == n_code_points(trim(prev)))) {
      prev = {};
      continue;
    }
    prev = line;
    // Images: "\0\b[image src=\"x.png\"\0\b]".
    std::string kept;
    for (size_t i = 0; i < line.size();) {
      if (line[i] == '\0' && line.compare(i, 3, std::string_view("\0\b[", 3)) == 0) {
        const size_t e = line.find(std::string_view("\0\b]", 3), i + 3);
        i = e == npos ? line.size() : e + 3;
        continue;
      }
      kept += line[i++];
    }
    text += kept;
    text += '\n';
  }
  return info_xrefs(text);
}

// ---------------------------------------------------------------- dictd

// dictfmt's "00-database-alphabet" entry: every character the dictionary uses, in code point order.
bool is_alphabet_line(std::string_view t) {
  uint32_t last = 0;
  size_t n = 0;
  for (size_t i = 0; i < t.size();) {
    size_t len;
    const uint32_t cp = decode_at(t, i, &len);
    if (n > 0 && cp <= last) return false;
    last = cp;
    ++n;
    i += len;
  }
  return n >= 16;
}

// "[1913 Webster]", "[WordNet 1.5 +PJC]", "[{Jargon File}]": a source note on a line of its own.
bool is_citation_line(std::string_view t) {
  return t.size() >= 3 && t.front() == '[' && t.back() == ']' && t.find('[', 1) == npos;
}

// FOLDOC closes each entry with its last-edit date "(2014-11-27)".
bool is_date_line(std::string_view t) {
  if (t.size() != 12 || t[0] != '(' || t[11] != ')' || t[5] != '-' || t[8] != '-') return false;
  for (size_t i : {1, 2, 3, 4, 6, 7, 9, 10})
    if (t[i] < '0' || t[i] > '9') return false;
  return true;
}

bool is_decoration_line(std::string_view t) {
  for (char c : t)
    if (is_alnum(c) || (unsigned char)c >= 0x80) return false;
  return !t.empty() && t.find_first_not_of(" \t") != npos && t.find_first_not_of("*=-_~#+./ \t") == npos;
}

// The dictfmt boilerplate that introduces the original's notice.
bool is_dictd_boilerplate(std::string_view first_line) {
  return starts_with(first_line, "00-database") || starts_with(first_line, "00database") ||
         starts_with(first_line, "The original data is available from:") ||
         starts_with(first_line, "The original data was distributed with the notice");
}

void append_dictd_line(std::string& out, std::string_view t) {
  const size_t start = out.size();
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '{' || c == '}') continue;  // cross-reference braces: keep the word
    if (c == '\xE2' && i + 2 < t.size() && (t[i + 1] == '\x94' || t[i + 1] == '\x95')) { i += 2; continue; }  // U+2500–U+257F
    out += c;
  }
  // A line that was all box drawing would otherwise leave a blank line: a paragraph break mid-entry.
  if (is_blank(std::string_view(out).substr(start))) out.resize(start);
  else out += '\n';
}

// ---------------------------------------------------------------- vim help

// "*tag*" only between blanks (or the line's ends), as Vim's syntax file has it; *not* a tag otherwise.
size_t vim_tag_end(std::string_view line, size_t i) {
  if (line[i] != '*' || (i > 0 && !is_space(line[i - 1]))) return npos;
  size_t j = i + 1;
  while (j < line.size() && line[j] != '*' && line[j] != '|' && line[j] != '"' && !is_space(line[j])) ++j;
  if (j == i + 1 || j >= line.size() || line[j] != '*') return npos;
  if (j + 1 < line.size() && !is_space(line[j + 1])) return npos;
  return j + 1;
}

std::string vim_line(std::string_view line) {
  // Tags right-aligned after the text are anchors for :help, not part of the sentence.
  for (;;) {
    const std::string_view t = trim(line);
    if (t.size() < 3 || t.back() != '*') break;
    const size_t start = t.rfind('*', t.size() - 2);
    if (start == npos || vim_tag_end(t, start) != t.size()) break;
    const size_t abs = (size_t)(t.data() - line.data()) + start;
    if (abs == 0 || !(line[abs - 1] == '\t' || (abs >= 2 && line[abs - 1] == ' ' && line[abs - 2] == ' ')))
      break;
    line = line.substr(0, abs);
  }
  std::string out;
  for (size_t i = 0; i < line.size();) {
    const char c = line[i];
    if (c == '*') {
      const size_t e = vim_tag_end(line, i);
      if (e != npos) { out += line.substr(i + 1, e - i - 2); i = e; continue; }
    }
    if (c == '|') {  // |link|
      size_t j = i + 1;
      while (j < line.size() && line[j] != '|' && line[j] != '"' && line[j] != '*' && !is_space(line[j])) ++j;
      if (j > i + 1 && j < line.size() && line[j] == '|') { out += line.substr(i + 1, j - i - 1); i = j + 1; continue; }
    }
    out += c;
    ++i;
  }
  const std::string_view t = trim(out);
  if (t.size() >= 2 && t.back() == '~' && is_space(t[t.size() - 2])) out.resize(out.rfind('~'));  // "Heading ~"
  return out;
}

bool vim_tags_only(std::string_view line) {
  bool any = false;
  for (size_t i = 0; i < line.size();) {
    if (is_space(line[i])) { ++i; continue; }
    const size_t e = vim_tag_end(line, i);
    if (e == npos) return false;
    any = true;
    i = e;
  }
  return any;
}

// The user manual draws Vim's screen: "+-----+" borders and "|~      |" rows (a lone "|link|" has no blank).
bool is_screen_line(std::string_view t) {
  if (t.size() >= 3 && t.front() == '+' && t.back() == '+' && t.find_first_not_of("+-=") == npos) return true;
  return t.size() >= 3 && t.front() == '|' && t.back() == '|' && t.find_first_of(" \t") != npos;
}

// "vim:tw=78:ts=8:noet:ft=help:norl:" — Vim reads modelines only in the first and last lines.
std::string_view cut_modeline(std::string_view line) {
  for (size_t p = line.find("vim:"); p != npos; p = line.find("vim:", p + 1)) {
    if (p > 0 && !is_space(line[p - 1])) continue;
    const std::string_view rest = trim(line.substr(p + 4));
    if (starts_with(rest, "set ") || rest.find(' ') == npos) return line.substr(0, p);
  }
  return line;
}

// " >" (or " >vim", " >lua") ending a line opens an example block; returns the line without the marker.
bool vim_example_start(std::string_view line, std::string_view* text) {
  size_t e = line.size();
  while (e > 0 && is_space(line[e - 1])) --e;
  size_t k = e;
  while (k > 0 && line[k - 1] >= 'a' && line[k - 1] <= 'z') --k;
  if (k == 0 || line[k - 1] != '>' || e - k > 8) return false;
  if (k >= 2 && !is_space(line[k - 2])) return false;
  *text = line.substr(0, k - 1);
  return true;
}

}  // namespace

std::string extract_info(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = s.find('\x1f'); pos != npos;) {
    const size_t next = s.find('\x1f', pos + 1);
    std::string_view section = s.substr(pos + 1, (next == npos ? s.size() : next) - pos - 1);
    pos = next;
    while (!section.empty() && (section[0] == '\n' || section[0] == '\f' || section[0] == '\r')) section.remove_prefix(1);
    // Only nodes carry prose: the tag table, the indirect table and "Local Variables" do not.
    if (!starts_with(section, "File:")) continue;
    const size_t eol = section.find('\n');
    if (eol == npos) continue;
    out += info_node_body(section.substr(eol + 1));
    out += "\n\n";
  }
  return out;
}

std::string extract_dictd(std::string_view s) {
  const std::vector<std::string_view> lines = split_lines(s);
  std::string out;
  out.reserve(s.size());
  bool keep = false;  // is the current entry kept?
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (is_blank(line)) continue;
    const std::string_view t = trim(line);
    // A headword stands at the left margin after a blank line, or right after an indented body that ended a
    // sentence (GCIDE sometimes runs entries together).
    bool starts = i == 0 || is_blank(lines[i - 1]);
    if (!starts && !is_space(line[0]) && is_space(lines[i - 1][0])) {
      const std::string_view p = trim(lines[i - 1]);
      starts = !p.empty() && std::strchr(".])!?\"'", p.back());
    }
    if (starts && !is_space(line[0])) {
      if (keep) out += '\n';
      keep = !is_dictd_boilerplate(t);
    }
    if (!keep) continue;
    if (is_alphabet_line(t) || is_citation_line(t) || is_date_line(t) || is_decoration_line(t)) continue;
    append_dictd_line(out, t);
  }
  return out;
}

std::string extract_vim_help(std::string_view s) {
  const std::vector<std::string_view> lines = split_lines(s);
  std::string out;
  out.reserve(s.size());
  bool in_example = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (in_example) {
      // An example runs over blank and indented lines; "<" or any line at the left margin ends it.
      if (is_blank(line) || is_space(line[0])) continue;
      in_example = false;
      out += '\n';  // the example stood between two paragraphs
      if (line[0] == '<') line.remove_prefix(1);
    }
    if (i + 5 >= lines.size()) line = cut_modeline(line);
    // The first line "*usr_02.txt*  For Vim version 9.0.  Last change: …" is the file's banner.
    if (i == 0 && !line.empty() && line[0] == '*' && line.find("For Vim version") != npos) continue;
    const std::string_view t = trim(line);
    const bool rule = t.size() >= 3 && t.find_first_not_of("=- \t") == npos;  // separators, table rules
    if (rule || vim_tags_only(line) || is_screen_line(t)) continue;
    std::string_view text;
    if (vim_example_start(line, &text)) {
      in_example = true;
      line = text;
    }
    out += vim_line(line);
    out += '\n';
  }
  return out;
}

}  // namespace heirloom::extract_detail
