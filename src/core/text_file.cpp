// Text file reading. See text_file.h.
#include "heirloom/text.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "heirloom/error.h"

namespace heirloom {

std::string read_text_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("text file '" + path + "' does not exist", "check the path");
  if (fs::is_directory(path, ec)) throw Error("'" + path + "' is a directory, expected a text file", "pass the files inside it");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "' for reading", "check its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_text_files(const std::vector<std::string>& paths) {
  std::string all;
  for (const auto& p : paths) {
    if (!all.empty()) all += "\n\n";
    all += read_text_file(p);
  }
  return all;
}

}  // namespace heirloom

namespace heirloom {

std::string read_text_for_eval(const std::string& path, bool llama_protocol) {
  std::string s = read_text_file(path);
  if (llama_protocol && !s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

}  // namespace heirloom
