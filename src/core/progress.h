// One-line progress bar on stderr: fraction, rate, ETA and a caller's status text.
// On a terminal it redraws in place; otherwise (logs, CI) it prints a line every 10% or 30 s.
#pragma once
#include <chrono>
#include <string>

namespace heirloom {

class Progress {
 public:
  Progress(long total, std::string label, std::string unit = "it", bool enabled = true);
  // A resumed job: `done` units were finished before this run, so rate and ETA count only what follows.
  void start_at(long done) { first_ = done; }
  void update(long done, const std::string& status = "");
  void finish(const std::string& status = "");
  double elapsed_seconds() const;

 private:
  long total_, first_ = 0;
  std::string label_, unit_;
  bool enabled_, tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace heirloom
