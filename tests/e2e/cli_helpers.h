// Running the `heirloom` program from tests: its exit code and output, and a scratch directory.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace heirloom {

struct CliResult {
  int code;
  std::string out;  // stdout and stderr together
};

inline CliResult run(const std::string& args) {
  const char* cli = std::getenv("HEIRLOOM_CLI");
  if (!cli) return {-1, "HEIRLOOM_CLI is not set (ctest sets it)"};
  const std::string cmd = std::string(cli) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

struct Dir {
  std::filesystem::path p;
  explicit Dir(const std::string& tag = "cli")
      : p(std::filesystem::temp_directory_path() / ("heirloom_" + tag + "_" + std::to_string(getpid()))) {
    std::filesystem::create_directories(p);
  }
  ~Dir() { std::filesystem::remove_all(p); }
  std::string operator/(const std::string& f) const { return (p / f).string(); }
};

}  // namespace heirloom
