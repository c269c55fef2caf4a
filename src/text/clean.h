// Turning installed documentation into plain prose: valid UTF-8, markup stripped, whitespace normalised,
// paragraphs, and a deterministic paragraph-level train/held-out split.
// The split is decided by a hash of each paragraph's text, so identical paragraphs always land on the same
// side: a held-out paragraph can never also occur in a training split.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace heirloom {

// Appends code point cp (below 0x110000) as UTF-8.
void append_utf8(std::string& out, uint32_t cp);
// Bytes in the character whose lead byte this is, as llama.cpp counts (from the high nibble only: 1–4).
size_t utf8_lead_len(char lead);

bool is_valid_utf8(std::string_view s);
// Bytes that are not part of a valid UTF-8 sequence.
int64_t count_invalid_utf8(std::string_view s);
// Valid UTF-8 kept as is; other bytes are read as Latin-1 (what old Debian text files use).
std::string to_utf8(std::string_view s);
// Tags removed (script/style with their content), block tags become paragraph breaks, entities decoded.
std::string strip_html(std::string_view html);
// \r\n → \n, tabs → space, control characters dropped, runs of spaces collapsed, lines trimmed, at most one
// blank line between paragraphs, no leading/trailing blank lines.
std::string normalise_whitespace(std::string_view s);
// Paragraphs separated by blank lines (of normalised text).
std::vector<std::string> split_paragraphs(std::string_view s);
// Deterministic held-out choice: true for about `fraction` of paragraphs, by a hash of (salt, text).
bool is_heldout(std::string_view paragraph, std::string_view salt, double fraction);

}  // namespace heirloom
