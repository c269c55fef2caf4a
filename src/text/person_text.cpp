// Reading a person's own text for personalisation, with the refusals a user's file needs.
// See include/heirloom/text.h.
#include <filesystem>

#include "heirloom/error.h"
#include "heirloom/text.h"
#include "text/clean.h"

namespace heirloom {

PersonText read_person_text(const std::string& path, int64_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    const auto size = fs::file_size(path, ec);
    if (!ec && (int64_t)size > max_bytes)
      throw Error("'" + path + "' is " + std::to_string(size >> 20) + " MiB; personal text is read into memory and is limited to " +
                      std::to_string(max_bytes >> 20) + " MiB",
                  "a specialist needs far less text: pass a part of it (or raise --max-mib)");
  }
  PersonText p;
  p.text = read_text_file(path);
  size_t control = 0, nul = 0;
  bool blank = true;
  for (unsigned char c : p.text) {
    if (c == 0) ++nul;
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f') ++control;
    if (c > ' ') blank = false;
  }
  if (p.text.empty() || blank) throw Error("'" + path + "' is empty (no text to learn from)", "point --text at a file with your writing");
  if (nul > 0 || control * 100 > p.text.size())
    throw Error("'" + path + "' looks like a binary file, not text (" + std::to_string(nul) + " NUL bytes, " +
                    std::to_string(control) + " control characters)",
                "pass plain-text files (UTF-8); convert documents to text first");
  // Invalid UTF-8 is accepted: byte-fallback tokens represent every byte exactly. The caller reports it.
  p.invalid_utf8 = count_invalid_utf8(p.text);
  return p;
}

}  // namespace heirloom
