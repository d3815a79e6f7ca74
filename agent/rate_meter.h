#pragma once

// Bytes per second over the last few seconds, from samples of a running
// total taken whenever someone asks (status calls). Thread-compatible.

#include <cstdint>
#include <deque>
#include <utility>

#include "absl/time/time.h"

namespace shoal::agent {

class RateMeter {
 public:
  explicit RateMeter(absl::Duration window = absl::Seconds(3)) : window_(window) {}

  // Records `total` at `now` and returns the rate since the oldest sample
  // still inside the window (or the newest one before it); 0 until two
  // samples are at least 100 ms apart.
  double Sample(absl::Time now, uint64_t total) {
    samples_.emplace_back(now, total);
    while (samples_.size() > 2 && samples_[1].first <= now - window_) samples_.pop_front();
    const auto& [then, before] = samples_.front();
    const double seconds = absl::ToDoubleSeconds(now - then);
    if (seconds < 0.1 || total < before) return 0;
    return static_cast<double>(total - before) / seconds;
  }

 private:
  const absl::Duration window_;
  std::deque<std::pair<absl::Time, uint64_t>> samples_;
};

}  // namespace shoal::agent
