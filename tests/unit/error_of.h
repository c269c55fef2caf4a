// The message of the heirloom::Error a call throws, or "" when it throws none: for tests of refusals.
#pragma once
#include <functional>
#include <string>

#include "heirloom/error.h"

namespace heirloom::testing {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace heirloom::testing
