// Internals shared by the extractors (extract*.cpp); not part of the library's API.
// Every per-format function takes valid UTF-8 and returns valid UTF-8 with the markup removed but the
// whitespace not yet normalised: extract_text does the common first and last steps. They only cut at ASCII
// bytes or whole code points, which is what keeps the output valid UTF-8.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace heirloom::extract_detail {

// Lines without their '\n' (and without a trailing '\r'); the views point into s.
std::vector<std::string_view> split_lines(std::string_view s);
bool is_blank(std::string_view line);
std::string_view trim(std::string_view s);
// Leading whitespace width, a tab advancing to the next multiple of 8 (how rst and vim read tabs).
int indent_of(std::string_view line);
// Number of code points (the visible length that heading underlines are measured against).
size_t n_code_points(std::string_view s);
// The code point at s[i] (s valid UTF-8) and its byte length in *len.
uint32_t decode_at(std::string_view s, size_t i, size_t* len);
void append_code_point(std::string& out, uint32_t cp);
// A line of one repeated character drawn from `chars`, at least min_len long (ignoring surrounding blanks).
bool is_rule_line(std::string_view line, std::string_view chars, size_t min_len);
bool starts_with(std::string_view s, std::string_view p);
bool ends_with(std::string_view s, std::string_view p);
bool is_alnum(char c);
bool is_space(char c);
// Finds `what` at or after `from` but before the end of the paragraph (the next blank line) and within
// max_span bytes; npos otherwise. Inline markup never spans paragraphs, so a missing closer stays literal.
size_t find_in_paragraph(std::string_view s, size_t from, std::string_view what, size_t max_span = 4000);

std::string extract_rest(std::string_view s);
std::string extract_asciidoc(std::string_view s);
std::string extract_pod(std::string_view s);
std::string extract_info(std::string_view s);
std::string extract_dictd(std::string_view s);
std::string extract_vim_help(std::string_view s);

}  // namespace heirloom::extract_detail
