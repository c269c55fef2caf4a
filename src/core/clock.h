// Wall-clock time as the files and the registry record it.
#pragma once
#include <string>

namespace heirloom {

std::string utc_now_iso8601();  // "2026-11-24T16:20:00Z"

}  // namespace heirloom
