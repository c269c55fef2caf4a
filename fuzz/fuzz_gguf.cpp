// libFuzzer target for the GGUF reader and the model loader (`make fuzz`): any byte string must either load
// as a model or be refused with heirloom::Error — never a crash, a sanitizer report or a huge allocation.
// tests/unit/test_fuzz_corpus.cpp runs the committed corpus (fuzz/corpus) through the same entry point.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "heirloom/error.h"
#include "io/gguf.h"
#include "io/model_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const heirloom::gguf::File f = heirloom::gguf::read_bytes(std::vector<uint8_t>(data, data + size));
    (void)heirloom::model_from_file(f);
  } catch (const heirloom::Error&) {
  }
  return 0;
}
