#include "agent/progress_line.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace shoal::agent {

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = bytes / 1024.0;
  size_t unit = 0;
  // Move up at 999.5 rather than 1024 so that "1000 KiB" never shows.
  while (value >= 999.5 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    value /= 1024;
    ++unit;
  }
  if (value < 9.995) return absl::StrFormat("%.2f %s", value, kUnits[unit]);
  if (value < 99.95) return absl::StrFormat("%.1f %s", value, kUnits[unit]);
  return absl::StrFormat("%.0f %s", value, kUnits[unit]);
}

std::string FormatRate(double bytes_per_second) {
  if (!(bytes_per_second > 0)) return "0 B/s";
  return absl::StrCat(FormatBytes(static_cast<uint64_t>(std::llround(bytes_per_second))), "/s");
}

std::string FormatEta(uint64_t remaining, double bytes_per_second) {
  if (remaining == 0) return "0s";
  if (!(bytes_per_second > 0)) return "--";
  const double seconds = std::ceil(remaining / bytes_per_second);
  if (seconds >= 100 * 3600) return ">99h";
  const int64_t s = static_cast<int64_t>(seconds);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
}

double PercentComplete(const v1::ReleaseStatus& status) {
  if (status.total_size() == 0) return 100.0;
  const double percent = 100.0 * status.bytes_verified() / status.total_size();
  return std::floor(percent * 10) / 10;
}

int PercentFromPeers(const v1::ReleaseStatus& status) {
  const uint64_t fetched = status.bytes_from_peers() + status.bytes_from_origin();
  if (fetched == 0) return 0;
  return static_cast<int>(std::llround(100.0 * status.bytes_from_peers() / fetched));
}

std::string ProgressLine(const v1::ReleaseStatus& status, double bytes_per_second) {
  const uint64_t remaining = status.total_size() > status.bytes_verified()
                                 ? status.total_size() - status.bytes_verified()
                                 : 0;
  const int from_peers = PercentFromPeers(status);
  const bool fetched = status.bytes_from_peers() + status.bytes_from_origin() > 0;
  return absl::StrFormat(
      "%s@%s  %5.1f%%  %s/%s  %s  ETA %s  peers %d  %s  %d proof failures  %d banned",
      status.name(), status.version(), PercentComplete(status),
      FormatBytes(status.bytes_verified()), FormatBytes(status.total_size()),
      FormatRate(bytes_per_second), FormatEta(remaining, bytes_per_second),
      status.peers_connected(),
      fetched ? absl::StrFormat("%d%% from peers, %d%% from origin", from_peers, 100 - from_peers)
              : std::string("nothing fetched yet"),
      status.proof_failures(), status.peers_banned());
}

std::string ProgressEvents(const v1::ReleaseStatus& before, const v1::ReleaseStatus& after) {
  std::vector<std::string> events;
  if (after.proof_failures() > before.proof_failures()) {
    const uint32_t n = after.proof_failures() - before.proof_failures();
    events.push_back(
        absl::StrFormat("%d piece%s failed %s Merkle proof (%d in all): dropped, fetching again", n,
                        n == 1 ? "" : "s", n == 1 ? "its" : "their", after.proof_failures()));
  }
  if (after.peers_banned() > before.peers_banned()) {
    const uint32_t n = after.peers_banned() - before.peers_banned();
    events.push_back(absl::StrFormat("%d peer%s banned for bad pieces (%d in all)", n,
                                     n == 1 ? "" : "s", after.peers_banned()));
  }
  if (!after.error().empty() && after.error() != before.error()) {
    events.push_back(after.error());
  }
  if (events.empty()) return "";
  return absl::StrCat(after.name(), "@", after.version(), ": ", absl::StrJoin(events, "; "));
}

void RateMeter::Add(absl::Time now, uint64_t bytes) {
  if (!have_sample_) {
    have_sample_ = true;
    last_time_ = now;
    last_bytes_ = bytes;
    return;
  }
  if (now <= last_time_) return;
  const double seconds = absl::ToDoubleSeconds(now - last_time_);
  const double instant = bytes > last_bytes_ ? (bytes - last_bytes_) / seconds : 0.0;
  if (have_rate_) {
    const double alpha = 1 - std::exp(-seconds / absl::ToDoubleSeconds(time_constant_));
    rate_ += alpha * (instant - rate_);
  } else {
    rate_ = instant;
    have_rate_ = true;
  }
  last_time_ = now;
  last_bytes_ = std::max(bytes, last_bytes_);
}

void ProgressPrinter::Update(absl::Time now, const v1::ReleaseStatus& status) {
  rate_.Add(now, status.bytes_verified());
  if (!has_status_) reported_ = status;  // counters from before this fetch are not news
  has_status_ = true;
  last_ = status;
  if (now - last_event_ >= options_.event_interval) {
    std::string events = ProgressEvents(reported_, status);
    if (!events.empty()) {
      Note(events);
      reported_ = status;
      last_event_ = now;
    }
  }
  last_drawn_ = false;
  const absl::Duration interval = options_.tty ? options_.tty_interval : options_.plain_interval;
  if (now - last_draw_ >= interval) Draw(now);
}

void ProgressPrinter::Note(absl::string_view line) {
  ClearLine();
  out_ << line << "\n";
  out_.flush();
  // Put the progress line back under the note at once.
  if (options_.tty && has_status_) Draw(last_draw_);
}

void ProgressPrinter::Done() {
  if (!has_status_) return;
  if (options_.tty) {
    Draw(last_draw_);
    out_ << "\n";
    line_open_ = false;
  } else if (!last_drawn_) {
    Draw(last_draw_);
  }
  out_.flush();
}

void ProgressPrinter::Draw(absl::Time now) {
  std::string line = ProgressLine(last_, rate_.BytesPerSecond());
  last_draw_ = now;
  last_drawn_ = true;
  if (!options_.tty) {
    out_ << line << "\n";
    out_.flush();
    return;
  }
  // One column short of the width: a full-width line wraps on some
  // terminals, and then "\r" no longer returns to its start.
  if (options_.width > 1 && line.size() > static_cast<size_t>(options_.width - 1)) {
    line.resize(options_.width - 1);
  }
  out_ << "\r" << line << "\033[K";
  out_.flush();
  line_open_ = true;
}

void ProgressPrinter::ClearLine() {
  if (!line_open_) return;
  out_ << "\r\033[K";
  line_open_ = false;
}

}  // namespace shoal::agent
