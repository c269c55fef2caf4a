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

#include <unistd.h>

#include <cstdio>

namespace heirloom {

size_t complete_utf8_prefix(const std::string& s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned char c = (unsigned char)s[n - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}
void write_file_atomic(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot write '" + tmp + "'", "check that the directory exists and is writable");
  const bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size() && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("could not write '" + path + "' (disk full?)", "free some space and run again");
  }
}

}  // namespace heirloom
