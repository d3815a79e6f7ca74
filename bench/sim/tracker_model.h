#pragma once

// One datacenter's tracker in the swarm simulator. Peer lists come from the
// tracker's own ranking (tracker::RankPeers) and lease answers from its own
// rule (tracker::ParseLeaseAsk / AnswerLeaseAsk) over its own lease store
// (tracker::MemoryStore::TryAcquireLease, K holders, lease TTL). What differs
// from shoal-tracker is only how the swarm is held: announced records stay
// in a vector and the holders of each piece are counted as announces come
// in, instead of listing the swarm from the store on every call (which at
// 3,000 peers per datacenter and millions of calls would dominate the run).
// "Held by another peer" is the same predicate: some other live peer of the
// datacenter announced the piece. Peers never expire here: agents announce
// far more often than the peer TTL.
//
// Thread-compatible.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "shoal/v1/tracker.pb.h"
#include "tracker/memory_store.h"

namespace shoal::sim {

struct TrackerSettings {
  std::string datacenter;
  std::string release_id;
  uint32_t num_pieces = 0;
  int lease_holders = 1;
  absl::Duration lease_ttl = absl::Seconds(60);
  uint32_t max_peers_returned = 50;
  uint32_t max_pieces_per_lease_request = 1024;
  uint64_t random_seed = 1;
  // Places of each answer kept for peers in other racks (a what-if; see
  // Scenario::cross_rack_peers).
  uint32_t other_rack_places = 0;
  // Service (see Scenario): threads (0: instant) and costs.
  int threads = 0;
  absl::Duration call_cost;
  absl::Duration peer_cost;
  absl::Duration announce_cost;
};

enum class TrackerCall : uint8_t { kAnnounce, kGetPeers, kLease };

class TrackerModel {
 public:
  explicit TrackerModel(TrackerSettings settings);

  // Records (or replaces) the announce of agent `agent`.
  void Announce(int agent, const std::string& peer_id, const std::string& rack,
                const std::string& bitfield, bool seeding, absl::Time now);
  // GetPeers with max_peers = `max_peers`: agent indices, best first.
  std::vector<int> GetPeers(int agent, const std::string& peer_id,
                            uint32_t max_peers);
  // RequestOriginLease. CHECK-fails on what shoal-tracker would refuse:
  // the simulated agents only send well-formed requests.
  v1::OriginLeaseResponse RequestLease(int agent,
                                       const v1::OriginLeaseRequest& request,
                                       absl::Time now);
  // A jittered next announce interval, as the tracker answers announces.
  absl::Duration Jittered(absl::Duration interval);

  // Queues a call arriving at `now`, first come first served on the
  // tracker's threads; returns when it starts being served, and sets
  // `done` to when it is answered.
  absl::Duration Admit(TrackerCall call, absl::Duration now,
                       absl::Duration* done);
  // Longest and total time calls waited for a thread.
  absl::Duration max_wait() const { return max_wait_; }
  absl::Duration total_wait() const { return total_wait_; }
  uint64_t calls() const { return calls_; }

  uint64_t lease_requests() const { return lease_requests_; }
  uint64_t leases_granted() const { return leases_granted_; }
  uint64_t peer_requests() const { return peer_requests_; }
  uint64_t announces() const { return announces_; }

 private:
  const TrackerSettings settings_;
  std::vector<v1::StoredPeer> peers_;  // announced, in announce order
  std::vector<int> agent_of_;          // parallel to peers_
  absl::flat_hash_map<int, size_t> index_of_;
  std::vector<uint32_t> holders_;  // announced holders, by piece
  tracker::MemoryStore leases_;
  std::mt19937_64 rng_;
  std::vector<absl::Duration> free_at_;  // by thread
  absl::Duration max_wait_;
  absl::Duration total_wait_;
  uint64_t calls_ = 0;
  uint64_t lease_requests_ = 0;
  uint64_t leases_granted_ = 0;
  uint64_t peer_requests_ = 0;
  uint64_t announces_ = 0;
};

}  // namespace shoal::sim
