// Reading a person's text files, with clear errors (missing, a directory, unreadable).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace heirloom {

std::string read_text_file(const std::string& path);
// Several files joined by a blank line.
std::string read_text_files(const std::vector<std::string>& paths);
// A person's text for personalisation. Refused with a clear Error: a file larger than max_bytes
// (checked before reading, so a 1 GB file costs nothing), an empty or whitespace-only file, a binary
// file (any NUL byte, or more than 1% control characters). Invalid UTF-8 is ACCEPTED — byte-fallback
// tokens encode every byte exactly — and counted in invalid_utf8 so the caller can say so.
struct PersonText {
  std::string text;
  int64_t invalid_utf8 = 0;  // bytes that are not part of a valid UTF-8 sequence
};
PersonText read_person_text(const std::string& path, int64_t max_bytes);
// A file as llama.cpp's perplexity tool reads it when llama_protocol is set (one trailing newline removed).
std::string read_text_for_eval(const std::string& path, bool llama_protocol);

}  // namespace heirloom

namespace heirloom {

// Length of s without a trailing, not yet complete, UTF-8 sequence: what can be shown of a stream of
// tokens so far (byte tokens complete a character only together).
size_t complete_utf8_prefix(const std::string& s);

// Writes path + ".tmp.<pid>", then renames it over path: readers never see a half-written file.
void write_file_atomic(const std::string& path, std::string_view data);

}  // namespace heirloom
