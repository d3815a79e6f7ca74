#pragma once

// Which peers of a swarm to hand an agent, nearest first. Pure ranking over
// the swarm's live peers; the tracker reads them from its store.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "absl/types/span.h"
#include "shoal/v1/tracker.pb.h"

namespace shoal::tracker {

// The agent asking for peers: where it is and what it holds.
struct Asker {
  std::string peer_id;
  std::string datacenter;
  // Empty: no candidate counts as being in the asker's rack.
  std::string rack;
  // Wire-form bitfield (common/bitfield.h); empty: holds nothing.
  std::string bitfield;
};

struct RankOptions {
  // Most peers returned.
  uint32_t limit = 50;
  // Whether peers of other datacenters follow the asker's own.
  bool include_other_datacenters = false;
};

// Up to options.limit of `candidates`, best first, in tiers: the asker's
// datacenter and rack; the rest of its datacenter; then, only with
// include_other_datacenters, every other datacenter. Within a tier, peers
// holding a piece the asker lacks come first; among equals the order is
// random (drawn from `gen`), so that load spreads over the swarm. The asker
// (by peer id) is never returned. The pointers point into `candidates`.
// Thread-safe as long as `gen` is used by this call only.
std::vector<const v1::StoredPeer*> RankPeers(
    const Asker& asker, absl::Span<const v1::StoredPeer> candidates,
    const RankOptions& options, absl::BitGenRef gen);

}  // namespace shoal::tracker
