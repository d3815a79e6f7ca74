#pragma once

// A Store kept in process memory: the default for a single tracker. State is
// lost when the process exits.
//
// Memory stays bounded by the live state: expired peers and leases are
// dropped when their swarm or piece is touched, and the whole store is swept
// whenever the number of entries has doubled since the last sweep (so the cost
// is amortized over the puts that grew it). Since PutPeer carries no current
// time, a sweep judges expiry against the latest `now` any call has passed in.
// The catalog and channels are kept until replaced; they grow only with what
// operators register.
//
// Never fails. Thread-safe: one mutex guards all state.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/v1/tracker.pb.h"
#include "tracker/store.h"

namespace shoal::tracker {

class MemoryStore final : public Store {
 public:
  MemoryStore();
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  absl::Status PutPeer(const std::string& release_id,
                       const v1::StoredPeer& peer, absl::Time expires) override;
  absl::Status RemovePeer(const std::string& release_id,
                          const std::string& datacenter,
                          const std::string& peer_id) override;
  absl::StatusOr<std::vector<v1::StoredPeer>> ListPeers(
      const std::string& release_id, const std::string& datacenter,
      absl::Time now) override;
  absl::StatusOr<std::vector<std::string>> ListSwarms(absl::Time now) override;

  absl::StatusOr<bool> TryAcquireLease(const LeaseKey& key,
                                       const std::string& peer_id,
                                       int max_holders, absl::Time now,
                                       absl::Time expires) override;
  absl::StatusOr<uint32_t> CountLeases(const std::string& release_id,
                                       const std::string& datacenter,
                                       absl::Time now) override;

  absl::Status PutRelease(const v1::StoredRelease& release) override;
  absl::StatusOr<std::optional<v1::StoredRelease>> GetRelease(
      const std::string& release_id) override;
  absl::StatusOr<std::vector<v1::StoredRelease>> ListReleases(
      const std::string& name) override;

  absl::StatusOr<ChannelRecord> PutChannel(
      const ChannelRecord& channel) override;
  absl::StatusOr<std::optional<ChannelRecord>> GetChannel(
      const std::string& channel) override;

  absl::Status Ping() override;

  // Peers and leases held, including expired ones not dropped yet: what the
  // memory bound is about. For tests and metrics.
  size_t EntryCount();

 private:
  struct PeerEntry {
    v1::StoredPeer peer;
    absl::Time expires;
  };
  // Peers of one (release, datacenter) swarm, by peer id.
  using Swarm = absl::flat_hash_map<std::string, PeerEntry>;
  // The swarms of one release, by datacenter.
  using ReleaseSwarms = absl::flat_hash_map<std::string, Swarm>;
  // Lease holders of one piece: peer id -> lease expiry.
  using Holders = absl::flat_hash_map<std::string, absl::Time>;
  // Leased pieces of one (release, datacenter) swarm.
  using SwarmLeases = absl::flat_hash_map<uint32_t, Holders>;
  using SwarmKey = std::pair<std::string, std::string>;  // release, datacenter

  void NoteNow(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the expired peers of `swarm`; returns how many remain.
  size_t TrimSwarm(Swarm& swarm, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Same for the holders of one piece.
  size_t TrimHolders(Holders& holders, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops expired entries of every swarm / piece and the containers they
  // leave empty, then schedules the next sweep.
  void SweepPeers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SweepLeases() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  // The latest `now` passed to any call; what sweeps judge expiry against.
  absl::Time latest_now_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  absl::flat_hash_map<std::string, ReleaseSwarms> swarms_ ABSL_GUARDED_BY(mu_);
  size_t peer_count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t peer_sweep_at_ ABSL_GUARDED_BY(mu_);

  absl::flat_hash_map<SwarmKey, SwarmLeases> leases_ ABSL_GUARDED_BY(mu_);
  size_t lease_count_ ABSL_GUARDED_BY(mu_) = 0;
  size_t lease_sweep_at_ ABSL_GUARDED_BY(mu_);

  std::map<std::string, v1::StoredRelease> releases_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ChannelRecord> channels_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::tracker
