// User-facing errors: what was expected, what was found, and a hint.
// Anything a user controls (files, text, flags) is validated at the edge and reported with
// heirloom::Error; the command-line program prints it and exits non-zero. Internal invariants use assert.
#pragma once
#include <stdexcept>
#include <string>

namespace heirloom {

class Error : public std::runtime_error {
 public:
  Error(std::string what, std::string hint = "") : std::runtime_error(std::move(what)), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

}  // namespace heirloom
