#include "tracker/peer_selection.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/random/distributions.h"
#include "common/bitfield.h"

namespace shoal::tracker {
namespace {

enum Tier { kSameRack = 0, kSameDatacenter = 1, kOtherDatacenter = 2 };
constexpr int kTiers = 3;

// Moves a uniformly random sample of min(count, size) elements, in random
// order, to the front of `peers` (a partial Fisher-Yates shuffle).
size_t SampleToFront(std::vector<const v1::StoredPeer*>& peers, size_t count,
                     absl::BitGenRef gen) {
  const size_t take = std::min(count, peers.size());
  for (size_t i = 0; i < take; ++i) {
    const size_t j = absl::Uniform<size_t>(gen, i, peers.size());
    std::swap(peers[i], peers[j]);
  }
  return take;
}

}  // namespace

std::vector<const v1::StoredPeer*> RankPeers(
    const Asker& asker, absl::Span<const v1::StoredPeer> candidates,
    const RankOptions& options, absl::BitGenRef gen) {
  // Two groups per tier: peers useful to the asker, then the others.
  std::array<std::vector<const v1::StoredPeer*>, 2 * kTiers> groups;
  for (const v1::StoredPeer& peer : candidates) {
    if (peer.peer_id() == asker.peer_id) continue;
    Tier tier;
    if (peer.datacenter() != asker.datacenter) {
      if (!options.include_other_datacenters) continue;
      tier = kOtherDatacenter;
    } else if (!asker.rack.empty() && peer.rack() == asker.rack) {
      tier = kSameRack;
    } else {
      tier = kSameDatacenter;
    }
    const bool useful = HasPieceMissingFrom(peer.bitfield(), asker.bitfield);
    groups[2 * tier + (useful ? 0 : 1)].push_back(&peer);
  }
  std::vector<const v1::StoredPeer*> ranked;
  for (auto& group : groups) {
    if (ranked.size() >= options.limit) break;
    const size_t take =
        SampleToFront(group, options.limit - ranked.size(), gen);
    ranked.insert(ranked.end(), group.begin(), group.begin() + take);
  }
  return ranked;
}

}  // namespace shoal::tracker
