#pragma once

// `shoalctl fetch`: asks the local agent for a release, shows its progress
// while it downloads, and ends once it is complete and verified (and
// installed, with a destination).

#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "agent/control_client.h"
#include "agent/progress_line.h"

namespace shoal::agent {

struct FetchOptions {
  // "name@version" or a release id.
  std::string release;
  // An absolute directory to install into; empty: the release stays in the
  // agent's store only.
  std::string dest;
  // Give up after this long; InfiniteDuration: never.
  absl::Duration timeout = absl::InfiniteDuration();
  // One JSON line on `out` at the end.
  bool json = false;
  ProgressPrinter::Options progress;
  // Waits between Fetch calls after the agent reported the release FAILED
  // (a store error it retries by itself), doubling up to the maximum.
  absl::Duration first_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
};

// Runs the fetch: progress, notes and errors on `err`, the JSON line on
// `out`. A release the agent reports FAILED is asked for again, with
// backoff, until it completes or the timeout passes; any other error ends
// the fetch. Returns the exit code: 0 complete and verified (and
// installed), 1 otherwise.
int RunFetch(ControlClient& client, const FetchOptions& options, std::ostream& out,
             std::ostream& err);

}  // namespace shoal::agent
