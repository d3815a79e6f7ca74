#pragma once

// Summaries of one swarm (a release's live peers in one datacenter) for the
// tracker's health report. Pure; thread-safe.

#include <cstdint>
#include <optional>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "shoal/v1/tracker.pb.h"

namespace shoal::tracker {

// Buckets of SwarmHealth.completion_histogram: ten deciles, then complete.
inline constexpr int kCompletionBuckets = 11;

// The bucket of a peer holding `pieces_have` of `total_pieces`: 10 when it
// holds them all (also when the release has none), else the decile 0..9.
int CompletionBucket(uint32_t pieces_have, uint32_t total_pieces);

// Counts `peers` by state, stalled peers (downloading, last progress at
// least `stall_threshold` before `now`), byte sums and, when `total_pieces`
// is known, the completion histogram (left empty otherwise). Fills only
// those fields and total_pieces; ids, names and leases are the caller's.
v1::SwarmHealth SummarizeSwarm(absl::Span<const v1::StoredPeer> peers,
                               std::optional<uint32_t> total_pieces,
                               absl::Time now, absl::Duration stall_threshold);

}  // namespace shoal::tracker
