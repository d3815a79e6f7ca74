#pragma once

// What `shoalctl fetch` shows while a release downloads: the formatting of
// sizes, rates, ETA and sources, a smoothed rate, and a printer that
// rewrites one line on a terminal or writes plain lines every few seconds
// elsewhere. Pure: time comes in as arguments, output goes to a stream, so
// all of it is tested on fake inputs.

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shoal/v1/agent.pb.h"

namespace shoal::agent {

// Binary units with three significant digits: "0 B", "777 B", "1.50 KiB",
// "12.3 MiB", "123 MiB", "4.00 GiB".
std::string FormatBytes(uint64_t bytes);

// FormatBytes per second: "12.3 MiB/s"; "0 B/s" for 0 or less.
std::string FormatRate(double bytes_per_second);

// The time `remaining` bytes take at `bytes_per_second`: "0s", "42s",
// "3m07s", "2h05m", ">99h"; "--" when the rate is 0 (unknown).
std::string FormatEta(uint64_t remaining, double bytes_per_second);

// Verified share of the release in percent, rounded down to 0.1 so that
// 100.0 means complete. An empty release is 100.
double PercentComplete(const v1::ReleaseStatus& status);

// Share of the verified bytes fetched on this agent that came from peers,
// in whole percent, rounded to nearest; 0 when nothing was fetched.
int PercentFromPeers(const v1::ReleaseStatus& status);

// "game@1  42.3%  4.23 MiB/10.0 MiB  1.30 MiB/s  ETA 5s  peers 3
//  80% from peers, 20% from origin  0 proof failures  0 banned" (one line).
std::string ProgressLine(const v1::ReleaseStatus& status, double bytes_per_second);

// What happened between two statuses of one release that deserves a line
// of its own: pieces that failed their proof, peers banned for it, a new
// error. Empty when nothing did.
std::string ProgressEvents(const v1::ReleaseStatus& before, const v1::ReleaseStatus& after);

// A download rate smoothed over a few seconds: an exponential moving average
// of the rate between successive samples of a byte counter.
// Not thread-safe.
class RateMeter {
 public:
  // `time_constant`: how long a change in rate takes to show by about 63%.
  explicit RateMeter(absl::Duration time_constant = absl::Seconds(3))
      : time_constant_(time_constant) {}

  // The counter read `bytes` at `now`. Samples at or before the previous
  // one's time are ignored; a counter that went down counts as unchanged.
  void Add(absl::Time now, uint64_t bytes);
  // 0 until two samples were added.
  double BytesPerSecond() const { return rate_; }

 private:
  absl::Duration time_constant_;
  bool have_sample_ = false;
  bool have_rate_ = false;
  absl::Time last_time_;
  uint64_t last_bytes_ = 0;
  double rate_ = 0;
};

// Prints the progress of one fetch to a stream (shoalctl's stderr).
// On a terminal: one line rewritten in place ("\r", the line, clear to end
// of line) at most every `tty_interval`, cut to the terminal's width. Else:
// a plain line at most every `plain_interval`, and the last status at
// Done() unless it was just printed.
// Either way, new proof failures, bans and errors get lines of their own, at
// most one every `event_interval`. Not thread-safe.
class ProgressPrinter {
 public:
  struct Options {
    bool tty = false;
    int width = 0;  // terminal columns; 0: unknown, lines are not cut
    absl::Duration tty_interval = absl::Milliseconds(250);
    absl::Duration plain_interval = absl::Seconds(5);
    absl::Duration event_interval = absl::Seconds(5);
  };

  // `out` must outlive the printer.
  ProgressPrinter(std::ostream& out, const Options& options) : out_(out), options_(options) {}

  // A status from the agent at `now`.
  void Update(absl::Time now, const v1::ReleaseStatus& status);
  // A line of its own (a retry, a warning), kept above the progress line.
  void Note(absl::string_view line);
  // Prints the last status if it was not printed yet, whatever the
  // interval (on a terminal: redraws it and ends the line). Nothing if no
  // status came.
  void Done();

  bool has_status() const { return has_status_; }
  const v1::ReleaseStatus& last() const { return last_; }
  double rate() const { return rate_.BytesPerSecond(); }

 private:
  void Draw(absl::Time now);
  void ClearLine();

  std::ostream& out_;
  const Options options_;
  RateMeter rate_;
  bool has_status_ = false;
  v1::ReleaseStatus last_;
  // The status the last event line reported on.
  v1::ReleaseStatus reported_;
  absl::Time last_draw_ = absl::InfinitePast();
  absl::Time last_event_ = absl::InfinitePast();
  // On a terminal: a progress line is on screen, not ended by a newline.
  bool line_open_ = false;
  // The last status is on screen (or in the output) as it is.
  bool last_drawn_ = false;
};

}  // namespace shoal::agent
