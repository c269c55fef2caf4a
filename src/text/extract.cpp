// Format dispatch, the shared line helpers, and the simple extractors: plain, html, fortune, code, the
// bible program's output, and gunzip. The markup-heavy formats live in extract_markup.cpp (rest, asciidoc),
// extract_pod.cpp and extract_docs.cpp (info, dictd, vim help).
// Invariant: whatever the bytes, output is valid UTF-8 (to_utf8 runs first and later steps cut only at ASCII
// bytes or whole code points). Deliberately not done: decompression inside extract_text — callers gunzip.
#include "text/extract.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>

#include "heirloom/error.h"
#include "text/clean.h"
#include "text/extract_detail.h"

namespace heirloom {

namespace extract_detail {

std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < s.size()) {
    size_t e = s.find('\n', start);
    if (e == std::string_view::npos) e = s.size();
    std::string_view line = s.substr(start, e - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = e + 1;
  }
  return lines;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
bool is_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return is_space(c); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

int indent_of(std::string_view line) {
  int w = 0;
  for (char c : line) {
    if (c == ' ') ++w;
    else if (c == '\t') w = (w / 8 + 1) * 8;
    else break;
  }
  return w;
}

size_t n_code_points(std::string_view s) {
  return (size_t)std::count_if(s.begin(), s.end(), [](char c) { return ((unsigned char)c & 0xC0) != 0x80; });
}

uint32_t decode_at(std::string_view s, size_t i, size_t* len) {
  const unsigned char c = (unsigned char)s[i];
  size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (i + n > s.size()) n = 1;  // cannot happen for valid UTF-8; stay in bounds anyway
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) cp = cp << 6 | ((unsigned char)s[i + k] & 0x3F);
  *len = n;
  return cp;
}

void append_code_point(std::string& out, uint32_t cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return;  // not a character: drop it
  append_utf8(out, cp);
}

bool is_rule_line(std::string_view line, std::string_view chars, size_t min_len) {
  const std::string_view t = trim(line);
  if (t.size() < min_len || chars.find(t[0]) == std::string_view::npos) return false;
  return std::all_of(t.begin(), t.end(), [&](char c) { return c == t[0]; });
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) { return s.size() >= p.size() && s.substr(s.size() - p.size()) == p; }

size_t find_in_paragraph(std::string_view s, size_t from, std::string_view what, size_t max_span) {
  if (from > s.size()) return std::string_view::npos;
  const std::string_view window = s.substr(from, max_span);
  const size_t pos = window.find(what);
  if (pos == std::string_view::npos) return pos;
  const size_t para = window.find("\n\n");
  if (para != std::string_view::npos && para < pos) return std::string_view::npos;
  return from + pos;
}

}  // namespace extract_detail

using namespace extract_detail;

namespace {

const char* const kNames[] = {"plain", "html", "rest", "pod", "asciidoc", "info", "dictd", "fortune", "vim_help", "code"};

// Overstrike (nroff-style "_\bX", "X\bX") keeps the last character written: drop each \b and the code point
// before it, rather than letting the \b vanish and leave "_X" behind.
std::string remove_overstrike(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != '\b') { out += c; continue; }
    while (!out.empty() && ((unsigned char)out.back() & 0xC0) == 0x80) out.pop_back();
    if (!out.empty()) out.pop_back();
  }
  return out;
}

// NBSP reads as a space and a soft hyphen as nothing; normalise_whitespace only knows ASCII blanks.
std::string finish_prose(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\xC2' && i + 1 < s.size() && s[i + 1] == '\xA0') { out += ' '; ++i; }
    else if (s[i] == '\xC2' && i + 1 < s.size() && s[i + 1] == '\xAD') ++i;
    else out += s[i];
  }
  return normalise_whitespace(out);
}

// <head> holds the title, metadata and scripts, none of it prose (strip_html keeps a <title>'s text).
std::string drop_html_head(std::string_view h) {
  const auto find_ci = [&](std::string_view word, size_t from) {
    for (size_t i = from; i + word.size() <= h.size(); ++i) {
      size_t k = 0;
      while (k < word.size() && std::tolower((unsigned char)h[i + k]) == word[k]) ++k;
      if (k == word.size()) return i;
    }
    return std::string_view::npos;
  };
  size_t b = find_ci("<head", 0);
  // "<header" is a body element, not the document head.
  while (b != std::string_view::npos && b + 5 < h.size() && is_alnum(h[b + 5])) b = find_ci("<head", b + 5);
  if (b == std::string_view::npos) return std::string(h);
  const size_t e = find_ci("</head", b);
  if (e == std::string_view::npos) return std::string(h.substr(0, b));
  const size_t close = h.find('>', e);
  std::string out(h.substr(0, b));
  if (close != std::string_view::npos) out += h.substr(close + 1);
  return out;
}

// Fortunes are separated by lines holding only '%'; each becomes one paragraph and keeps its line breaks
// (poems), so blank lines inside a fortune are removed.
std::string extract_fortune(std::string_view s) {
  std::string out;
  bool started = false, pending_break = false;
  for (std::string_view line : split_lines(s)) {
    if (trim(line) == "%") { pending_break = started; continue; }
    if (is_blank(line)) continue;
    if (started) out += pending_break ? "\n\n" : "\n";
    out += line;
    started = true;
    pending_break = false;
  }
  return out;
}

std::string extract_code(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  int blank_run = 0;
  bool any = false;
  const auto flush_blanks = [&] {
    if (any) for (int k = 0; k < (blank_run >= 3 ? 1 : blank_run); ++k) out += '\n';
    blank_run = 0;
  };
  for (std::string_view line : split_lines(s)) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (line.empty()) { ++blank_run; continue; }
    flush_blanks();
    if (any) out += '\n';
    out += line;
    any = true;
  }
  return out;
}

}  // namespace

TextFormat parse_text_format(std::string_view name) {
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (name == kNames[i]) return (TextFormat)i;
  if (name == "vim-help") return TextFormat::vim_help;
  std::string valid;
  for (const char* n : kNames) valid += valid.empty() ? n : std::string(", ") + n;
  throw Error("expected a text format (" + valid + "), found \"" + std::string(name) + "\"",
              "pick the format of the files' markup; \"plain\" takes text as it is");
}

const char* text_format_name(TextFormat f) {
  const size_t i = (size_t)f;
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

std::string extract_text(TextFormat f, std::string_view bytes) {
  const std::string s = to_utf8(bytes);
  switch (f) {
    case TextFormat::plain: return finish_prose(remove_overstrike(s));
    case TextFormat::html: return finish_prose(strip_html(drop_html_head(s)));
    case TextFormat::rest: return finish_prose(extract_rest(s));
    case TextFormat::pod: return finish_prose(extract_pod(s));
    case TextFormat::asciidoc: return finish_prose(extract_asciidoc(s));
    case TextFormat::info: return finish_prose(extract_info(s));
    case TextFormat::dictd: return finish_prose(extract_dictd(s));
    case TextFormat::fortune: return finish_prose(extract_fortune(remove_overstrike(s)));
    case TextFormat::vim_help: return finish_prose(extract_vim_help(s));
    case TextFormat::code: return extract_code(s);
  }
  return finish_prose(s);
}

bool looks_gzipped(std::string_view data) {
  return data.size() >= 2 && (unsigned char)data[0] == 0x1f && (unsigned char)data[1] == 0x8b;
}

std::string gunzip(std::string_view data, size_t max_bytes) {
  z_stream z;
  std::memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 15 + 32) != Z_OK)  // +32: accept a gzip or a zlib header
    throw Error("expected zlib to start, found it could not allocate its state", "free some memory");
  std::string out;
  char buf[1 << 16];
  size_t pos = 0;
  const auto fail = [&](const std::string& what, const std::string& hint) {
    inflateEnd(&z);
    throw Error(what, hint);
  };
  for (;;) {
    // avail_in is 32-bit: feed at most 1 GiB at a time.
    const size_t chunk = std::min(data.size() - pos, size_t(1) << 30);
    z.next_in = (Bytef*)data.data() + pos;
    z.avail_in = (uInt)chunk;
    const size_t before = z.avail_in;
    z.next_out = (Bytef*)buf;
    z.avail_out = sizeof buf;
    const int rc = inflate(&z, Z_NO_FLUSH);
    pos += before - z.avail_in;
    const size_t got = sizeof buf - z.avail_out;
    if (out.size() + got > max_bytes)
      fail("expected compressed data that unpacks to at most " + std::to_string(max_bytes) + " bytes, found more",
           "the file may be a zip bomb; raise the limit only if you trust it");
    out.append(buf, got);
    if (rc == Z_STREAM_END) {
      // gzip allows several members back to back; anything else after the end is ignored, as gzip does.
      if (pos + 2 <= data.size() && looks_gzipped(data.substr(pos))) {
        inflateReset(&z);
        continue;
      }
      break;
    }
    if (rc == Z_BUF_ERROR && pos >= data.size() && got == 0)
      fail("expected a complete gzip/zlib stream, found it cut short after " + std::to_string(data.size()) +
               " bytes (truncated or corrupt)",
           "the file is truncated or damaged; download or copy it again");
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      fail(std::string("expected valid gzip/zlib data, found corrupt data (") + (z.msg ? z.msg : "zlib error " + std::to_string(rc)) + ")",
           "check that the file is really gzip-compressed and not damaged");
  }
  inflateEnd(&z);
  return out;
}

namespace {
// "Genesis 1", "1 Samuel 3", "Song of Solomon 2": a heading line of the plain output.
bool is_chapter_heading(std::string_view t) {
  const size_t sp = t.rfind(' ');
  if (sp == std::string_view::npos || sp + 1 >= t.size()) return false;
  for (size_t i = sp + 1; i < t.size(); ++i)
    if (t[i] < '0' || t[i] > '9') return false;
  for (size_t i = 0; i < sp; ++i)
    if (!is_alnum(t[i]) && t[i] != ' ') return false;
  return sp > 0 && !(t[0] >= '0' && t[0] <= '9' && (sp < 2 || t[1] != ' '));
}
// "Ge1:1 ", "1Sm3:4 ", "SSol2:1 ": the reference of the -f output; *key gets "Ge1" (book and chapter).
size_t verse_reference(std::string_view line, std::string_view* key) {
  size_t i = 0;
  if (i < line.size() && line[i] >= '1' && line[i] <= '3') ++i;
  const size_t book = i;
  while (i < line.size() && ((line[i] >= 'A' && line[i] <= 'Z') || (line[i] >= 'a' && line[i] <= 'z'))) ++i;
  if (i == book) return 0;
  const size_t chapter = i;
  while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
  if (i == chapter || i >= line.size() || line[i] != ':') return 0;
  *key = line.substr(0, i);
  ++i;
  const size_t verse = i;
  while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
  if (i == verse || i >= line.size() || line[i] != ' ') return 0;
  return i + 1;
}
}  // namespace

std::string extract_bible_kjv(std::string_view bible_program_output) {
  const std::string s = to_utf8(bible_program_output);
  const std::vector<std::string_view> lines = split_lines(s);
  std::string out;
  const auto add = [&](std::string_view text) {
    if (!out.empty() && out.back() != '\n') out += ' ';
    out += trim(text);
  };
  const auto new_chapter = [&] {
    if (!out.empty()) out += "\n\n";
  };
  std::string prev_key;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (is_blank(line)) continue;
    std::string_view key;
    if (const size_t text = verse_reference(line, &key)) {  // bible -f
      if (key != prev_key) new_chapter();
      prev_key = key;
      add(line.substr(text));
      continue;
    }
    const std::string_view t = trim(line);
    const bool alone = (i == 0 || is_blank(lines[i - 1])) && (i + 1 == lines.size() || is_blank(lines[i + 1]));
    if (alone && is_chapter_heading(t)) { new_chapter(); continue; }
    if (line[0] == ' ') {  // "  12 verse text": drop the number
      size_t k = 0;
      while (k < t.size() && t[k] >= '0' && t[k] <= '9') ++k;
      add(k > 0 && k < t.size() && t[k] == ' ' ? t.substr(k + 1) : t);
    } else {
      add(t);  // a wrapped continuation line
    }
  }
  return normalise_whitespace(out);
}

}  // namespace heirloom
