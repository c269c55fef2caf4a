// Format extractors for the corpus builder: the bytes of one installed document (already decompressed) →
// plain UTF-8 prose, paragraphs separated by exactly one blank line (clean.h's normalise_whitespace).
// Invariants: every extractor accepts any bytes — garbage, truncated markup, Latin-1 — and returns valid
// UTF-8 without throwing; only gunzip and parse_text_format throw (heirloom::Error).
// Deliberately not done: reading files, guessing the format from a name or from the content, and
// rendering markup faithfully. The aim is prose for a language model, so code samples, tables, index
// entries, menus and metadata are dropped rather than reproduced. `code` is the one format kept verbatim.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace heirloom {

enum class TextFormat { plain, html, rest, pod, asciidoc, info, dictd, fortune, vim_help, code };

// "plain", "html", "rest", "pod", "asciidoc", "info", "dictd", "fortune", "vim_help" (or "vim-help"), "code".
// Throws heirloom::Error naming the valid names.
TextFormat parse_text_format(std::string_view name);
const char* text_format_name(TextFormat f);

// Prose formats: to_utf8, strip the markup, NBSP → space, normalise_whitespace.
// `code`: to_utf8, \r\n → \n, trailing blanks stripped, runs of 3+ blank lines → one blank line, leading and
// trailing blank lines dropped; indentation and everything else kept as is.
std::string extract_text(TextFormat f, std::string_view bytes);

// gzip (several members allowed, as gzip writes them) or zlib data → its bytes. dictd's .dz is gzip.
// Throws heirloom::Error on corrupt or truncated data, or when the output would exceed max_bytes.
std::string gunzip(std::string_view data, size_t max_bytes = size_t(1) << 30);
bool looks_gzipped(std::string_view data);  // gzip magic 1f 8b

// The King James Bible as the bible-kjv program prints it — either `bible gen1:1-rev22:21` ("Genesis 1"
// headings, "  1 In the beginning…" verses wrapped at the terminal width) or `bible -f …` ("Ge1:1 In the
// beginning…", a verse a line) → one paragraph per chapter, book headings and verse numbers removed.
std::string extract_bible_kjv(std::string_view bible_program_output);

}  // namespace heirloom
