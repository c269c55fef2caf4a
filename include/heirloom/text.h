// Reading a person's text files, with clear errors (missing, a directory, unreadable).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace heirloom {

std::string read_text_file(const std::string& path);
// Several files joined by a blank line.
std::string read_text_files(const std::vector<std::string>& paths);
// A file as llama.cpp's perplexity tool reads it when llama_protocol is set (one trailing newline removed).
std::string read_text_for_eval(const std::string& path, bool llama_protocol);

}  // namespace heirloom

namespace heirloom {

// Writes path + ".tmp.<pid>", then renames it over path: readers never see a half-written file.
void write_file_atomic(const std::string& path, std::string_view data);

}  // namespace heirloom
