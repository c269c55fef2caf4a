// Progress bar. See progress.h.
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace heirloom {

Progress::Progress(long total, std::string label, std::string unit, bool enabled)
    : total_(total), label_(std::move(label)), unit_(std::move(unit)), enabled_(enabled), tty_(isatty(2)),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(long done, const std::string& status) {
  if (!enabled_ || total_ <= 0) return;
  const auto now = std::chrono::steady_clock::now();
  const int decile = (int)(10 * done / total_);
  // A terminal redraws ten times a second; a log gets a line per 10% or per 30 s, whichever comes first.
  if (tty_ ? (now - last_draw_ < std::chrono::milliseconds(100) && done < total_)
           : (decile == last_decile_ && now - last_draw_ < std::chrono::seconds(30)))
    return;
  last_draw_ = now;
  last_decile_ = decile;
  const double t = elapsed_seconds(), rate = done > first_ ? (done - first_) / t : 0.0;
  const double eta = rate > 0 ? (total_ - done) / rate : 0.0;
  const int width = 24, filled = (int)(width * done / total_);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "%s%s [%s] %ld/%ld %.1f %s/s ETA %.0fs %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               done, total_, rate, unit_.c_str(), eta, status.c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void Progress::finish(const std::string& status) {
  if (!enabled_) return;
  last_decile_ = -1;
  last_draw_ = {};
  update(total_, status);
  if (tty_) std::fputc('\n', stderr);
}

}  // namespace heirloom
