// Text cleaning. See clean.h.
#include "text/clean.h"

#include <cctype>
#include <cstring>

namespace heirloom {

namespace {
// Length of the valid UTF-8 sequence at s[i], or 0 if invalid (overlongs, surrogates, > U+10FFFF rejected).
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return (unsigned char)s[i + k]; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (b(k) & 0x3F);
  }
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

bool iequals_prefix(std::string_view s, size_t i, std::string_view word) {
  if (i + word.size() > s.size()) return false;
  for (size_t k = 0; k < word.size(); ++k)
    if (std::tolower((unsigned char)s[i + k]) != word[k]) return false;
  return true;
}

uint32_t named_entity(std::string_view name) {
  static const struct { const char* n; uint32_t cp; } kEntities[] = {
      {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}, {"nbsp", ' '}, {"mdash", 0x2014},
      {"ndash", 0x2013}, {"hellip", 0x2026}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C},
      {"rdquo", 0x201D}, {"copy", 0xA9}, {"reg", 0xAE}, {"trade", 0x2122}, {"para", 0xB6}, {"sect", 0xA7},
      {"times", 0xD7}, {"bull", 0x2022}, {"middot", 0xB7}, {"laquo", 0xAB}, {"raquo", 0xBB}};
  for (const auto& e : kEntities)
    if (name == e.n) return e.cp;
  return 0;
}
}  // namespace

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) out += (char)cp;
  else if (cp < 0x800) { out += (char)(0xC0 | cp >> 6); out += (char)(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) { out += (char)(0xE0 | cp >> 12); out += (char)(0x80 | (cp >> 6 & 0x3F)); out += (char)(0x80 | (cp & 0x3F)); }
  else { out += (char)(0xF0 | cp >> 18); out += (char)(0x80 | (cp >> 12 & 0x3F)); out += (char)(0x80 | (cp >> 6 & 0x3F)); out += (char)(0x80 | (cp & 0x3F)); }
}

size_t utf8_lead_len(char lead) {
  static constexpr uint8_t lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lut[static_cast<uint8_t>(lead) >> 4];
}

bool is_valid_utf8(std::string_view s) { return count_invalid_utf8(s) == 0; }

int64_t count_invalid_utf8(std::string_view s) {
  int64_t bad = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_len(s, i);
    bad += n == 0;
    i += n ? n : 1;
  }
  return bad;
}

std::string to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_len(s, i);
    if (n) { out.append(s.substr(i, n)); i += n; }
    else { append_utf8(out, (unsigned char)s[i]); ++i; }  // Latin-1 byte → its code point
  }
  return out;
}

std::string strip_html(std::string_view h) {
  static const char* kBlock[] = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
                                 "table", "tr", "dt", "dd", "dl", "blockquote", "section", "hr", "title"};
  std::string out;
  out.reserve(h.size());
  for (size_t i = 0; i < h.size();) {
    const char c = h[i];
    if (c == '<') {
      if (h.compare(i, 4, "<!--") == 0) {
        const size_t e = h.find("-->", i + 4);
        i = e == std::string_view::npos ? h.size() : e + 3;
        continue;
      }
      for (const char* skip : {"script", "style"})
        if (iequals_prefix(h, i + 1, skip)) {
          std::string end = "</";  // appended, not "+": GCC 12 warns falsely (-Wrestrict) on the sum
          end += skip;
          const size_t e = h.find(end, i);
          i = e == std::string_view::npos ? h.size() : e;
          break;
        }
      const size_t e = h.find('>', i);
      if (e == std::string_view::npos) break;
      size_t name = i + 1 + (i + 1 < h.size() && h[i + 1] == '/');
      bool block = false;
      for (const char* b : kBlock) {
        const size_t n = std::strlen(b);
        if (iequals_prefix(h, name, b) && name + n <= h.size() && !std::isalnum((unsigned char)h[name + n])) block = true;
      }
      out += block ? "\n\n" : "";
      i = e + 1;
    } else if (c == '&') {
      const size_t e = h.find(';', i);
      if (e != std::string_view::npos && e - i <= 10) {
        const std::string_view ent = h.substr(i + 1, e - i - 1);
        uint32_t cp = 0;
        if (!ent.empty() && ent[0] == '#') {
          const bool hex = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X');
          cp = (uint32_t)std::strtoul(std::string(ent.substr(hex ? 2 : 1)).c_str(), nullptr, hex ? 16 : 10);
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0;
        } else {
          cp = named_entity(ent);
        }
        if (cp) {
          append_utf8(out, cp);
          i = e + 1;
          continue;
        }
      }
      out += c;
      ++i;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

std::string normalise_whitespace(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  int newlines = 0;       // pending newlines
  bool space = false;     // pending space
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = (unsigned char)s[i];
    if (c == '\n') { ++newlines; space = false; continue; }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') { space = true; continue; }
    if (c < 0x20 || c == 0x7F) continue;
    if (!out.empty()) {
      if (newlines) out.append(newlines >= 2 ? "\n\n" : "\n");
      else if (space) out += ' ';
    }
    newlines = 0;
    space = false;
    out += (char)c;
  }
  return out;
}

std::vector<std::string> split_paragraphs(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t e = s.find("\n\n", start);
    if (e == std::string_view::npos) e = s.size();
    if (e > start) out.emplace_back(s.substr(start, e - start));
    start = e + 2;
  }
  return out;
}

bool is_heldout(std::string_view paragraph, std::string_view salt, double fraction) {
  uint64_t h = 1469598103934665603ull;
  for (char c : salt) h = (h ^ (unsigned char)c) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (char c : paragraph) h = (h ^ (unsigned char)c) * 1099511628211ull;
  h ^= h >> 33;  // mix the high bits down before taking a fraction
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return (double)(h >> 11) / 9007199254740992.0 < fraction;
}

}  // namespace heirloom
