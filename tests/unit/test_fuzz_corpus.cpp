// Every file in the fuzzer's committed corpus (fuzz/corpus: seeds and any input that once crashed) goes
// through the fuzz target's entry point: it loads as a model or is refused with heirloom::Error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "heirloom/error.h"
#include "io/gguf.h"
#include "io/model_file.h"

namespace heirloom {
namespace {

TEST(Fuzz, CommittedCorpusLoadsOrIsRefused) {
  const std::filesystem::path dir = std::filesystem::path(HEIRLOOM_SOURCE_DIR) / "fuzz" / "corpus";
  int files = 0, loaded = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().filename() == "README.md") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    ++files;
    try {
      (void)model_from_file(gguf::read_bytes(std::move(bytes), e.path().filename().string()));
      ++loaded;
    } catch (const Error&) {
      // refused with a message: fine
    }
  }
  EXPECT_GE(files, 9);   // the seeds at least
  EXPECT_GE(loaded, 8);  // the eight micro models load
}

}  // namespace
}  // namespace heirloom
