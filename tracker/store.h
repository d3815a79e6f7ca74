#pragma once

// Where a tracker keeps swarm, lease, catalog and channel state: in process
// memory (one tracker) or in Redis (several replicas of one datacenter's
// tracker sharing it). The tracker's policy code sees only this interface.
//
// Times are passed in by the caller (from its Clock), never read here, so the
// stores behave identically under a fake clock. Implementations are
// thread-safe. Errors: UNAVAILABLE when the backing service cannot be
// reached (the caller may retry), INTERNAL for a reply that makes no sense.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "shoal/v1/tracker.pb.h"

namespace shoal::tracker {

struct LeaseKey {
  std::string release_id;
  std::string datacenter;
  uint32_t piece = 0;
};

// One PutPeer, for PutPeers.
struct PeerPut {
  std::string release_id;
  v1::StoredPeer peer;
  absl::Time expires;
};

struct ChannelRecord {
  std::string channel;
  std::string release_id;
  uint32_t percent = 0;
  bool paused = false;
  uint64_t generation = 0;  // set by the store: one more than the last
  int64_t updated_ms = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // --- Swarms: peers per (release, datacenter). ---

  // Inserts or replaces `peer` in the swarm of `release_id` in the peer's
  // datacenter; it expires at `expires` unless put again.
  virtual absl::Status PutPeer(const std::string& release_id,
                               const v1::StoredPeer& peer,
                               absl::Time expires) = 0;
  // PutPeer for each of `puts`; a store on a server sends them in one round
  // trip. Not atomic: after an error, any of them may have been stored.
  virtual absl::Status PutPeers(absl::Span<const PeerPut> puts) {
    for (const PeerPut& put : puts) {
      absl::Status status = PutPeer(put.release_id, put.peer, put.expires);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
  // Forgets the peer in that swarm (a graceful stop). OK if absent.
  virtual absl::Status RemovePeer(const std::string& release_id,
                                  const std::string& datacenter,
                                  const std::string& peer_id) = 0;
  // Live peers (expiry after `now`) of the swarm in `datacenter`, or of every
  // datacenter when `datacenter` is empty. Order unspecified. Expired entries
  // may be dropped as a side effect.
  virtual absl::StatusOr<std::vector<v1::StoredPeer>> ListPeers(
      const std::string& release_id, const std::string& datacenter,
      absl::Time now) = 0;
  // Releases that have at least one live peer.
  virtual absl::StatusOr<std::vector<std::string>> ListSwarms(
      absl::Time now) = 0;

  // --- Origin leases. ---

  // Atomically: drops expired leases on the piece; if `peer_id` holds one, it
  // is extended to `expires` and true returned; else, if fewer than
  // `max_holders` live leases remain, one is granted to `peer_id` until
  // `expires` and true returned; otherwise false.
  virtual absl::StatusOr<bool> TryAcquireLease(const LeaseKey& key,
                                               const std::string& peer_id,
                                               int max_holders, absl::Time now,
                                               absl::Time expires) = 0;
  // Live leases in the (release, datacenter) swarm, over all pieces.
  virtual absl::StatusOr<uint32_t> CountLeases(const std::string& release_id,
                                               const std::string& datacenter,
                                               absl::Time now) = 0;

  // --- Release catalog. ---

  // Inserts or replaces the release.
  virtual absl::Status PutRelease(const v1::StoredRelease& release) = 0;
  virtual absl::StatusOr<std::optional<v1::StoredRelease>> GetRelease(
      const std::string& release_id) = 0;
  // All releases, optionally only those of `name`; sorted by release id.
  virtual absl::StatusOr<std::vector<v1::StoredRelease>> ListReleases(
      const std::string& name) = 0;

  // --- Channels. ---

  // Stores the channel with generation = previous generation + 1 (1 for a new
  // channel) and returns what was stored.
  virtual absl::StatusOr<ChannelRecord> PutChannel(
      const ChannelRecord& channel) = 0;
  virtual absl::StatusOr<std::optional<ChannelRecord>> GetChannel(
      const std::string& channel) = 0;

  // OK when the store is reachable (for /readyz).
  virtual absl::Status Ping() = 0;
};

}  // namespace shoal::tracker
