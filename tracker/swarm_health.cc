#include "tracker/swarm_health.h"

#include <algorithm>

namespace shoal::tracker {

int CompletionBucket(uint32_t pieces_have, uint32_t total_pieces) {
  if (pieces_have >= total_pieces) return kCompletionBuckets - 1;
  const uint64_t decile = uint64_t{pieces_have} * 10 / total_pieces;
  return static_cast<int>(std::min<uint64_t>(decile, 9));
}

v1::SwarmHealth SummarizeSwarm(absl::Span<const v1::StoredPeer> peers,
                               std::optional<uint32_t> total_pieces,
                               absl::Time now, absl::Duration stall_threshold) {
  v1::SwarmHealth health;
  if (total_pieces.has_value()) {
    health.set_total_pieces(*total_pieces);
    for (int i = 0; i < kCompletionBuckets; ++i) {
      health.add_completion_histogram(0);
    }
  }
  const int64_t stalled_before_ms = absl::ToUnixMillis(now - stall_threshold);
  for (const v1::StoredPeer& peer : peers) {
    if (peer.state() == v1::PEER_STATE_SEEDING) {
      health.set_peers_seeding(health.peers_seeding() + 1);
    } else if (peer.state() == v1::PEER_STATE_DOWNLOADING) {
      health.set_peers_downloading(health.peers_downloading() + 1);
      if (peer.last_progress_ms() <= stalled_before_ms) {
        health.set_peers_stalled(health.peers_stalled() + 1);
      }
    }
    health.set_bytes_from_peers(health.bytes_from_peers() +
                                peer.bytes_from_peers());
    health.set_bytes_from_origin(health.bytes_from_origin() +
                                 peer.bytes_from_origin());
    if (total_pieces.has_value()) {
      const int bucket = CompletionBucket(peer.pieces_have(), *total_pieces);
      health.set_completion_histogram(bucket,
                                      health.completion_histogram(bucket) + 1);
    }
  }
  return health;
}

}  // namespace shoal::tracker
