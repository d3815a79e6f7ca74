#pragma once

// What one tracker replica remembers of each peer between its announces:
// how often it announced lately (the per-peer rate limit) and, per release,
// the piece count it last reported and when that count last grew (for stall
// detection). Replicas do not share this; a peer that moves to another
// replica starts afresh there.
//
// Memory is bounded by about `max_entries` (peers plus their per-release
// records).
// When an insert finds the memo full, records not refreshed for
// `forget_after` are dropped; if that frees less than a quarter, everything
// is forgotten. Forgetting errs towards admitting peers and towards
// reporting progress, never towards refusing or flagging a healthy peer.
//
// Thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace shoal::tracker {

class PeerMemo {
 public:
  // At most `max_per_window` announces per peer in each `window`, which
  // starts at the first announce after the previous window ended.
  // CHECK-fails unless max_entries >= 1, max_per_window >= 1 and both
  // durations are positive.
  PeerMemo(size_t max_entries, absl::Duration window, int max_per_window,
           absl::Duration forget_after);
  PeerMemo(const PeerMemo&) = delete;
  PeerMemo& operator=(const PeerMemo&) = delete;

  // Counts an announce by `peer_id` at `now`. RESOURCE_EXHAUSTED, saying
  // when to retry, when the peer already used up its current window; the
  // refused announce is not counted.
  absl::Status Admit(const std::string& peer_id, absl::Time now);

  // Records that `peer_id` holds `pieces_have` pieces of `release_id` at
  // `now` and returns when that count last grew: `now` for the first report
  // (or the first after `forget_after` of silence) and whenever it grew,
  // else the time it last grew.
  absl::Time RecordProgress(const std::string& peer_id,
                            const std::string& release_id, uint32_t pieces_have,
                            absl::Time now);

  // Forgets the peer's record of one release (a graceful stop).
  void ForgetRelease(const std::string& peer_id, const std::string& release_id);

  // Peers plus per-release records held now.
  size_t entries() const;

 private:
  struct Progress {
    uint32_t pieces_have = 0;
    absl::Time last_progress = absl::InfinitePast();
    absl::Time last_seen = absl::InfinitePast();
  };
  struct Peer {
    absl::Time window_start = absl::InfinitePast();
    int announces = 0;
    absl::Time last_seen = absl::InfinitePast();
    absl::flat_hash_map<std::string, Progress> releases;
  };

  // The peer's record, made (after room is made) when missing.
  Peer& FindOrAdd(const std::string& peer_id, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes room for one more entry.
  void Reserve(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Stale(absl::Time last_seen, absl::Time now) const {
    return last_seen + forget_after_ <= now;
  }

  const size_t max_entries_;
  const absl::Duration window_;
  const int max_per_window_;
  const absl::Duration forget_after_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Peer> peers_ ABSL_GUARDED_BY(mu_);
  size_t entries_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::tracker
