#include "bench/sim/tracker_model.h"

#include <algorithm>

#include "absl/types/span.h"
#include "common/bitfield.h"
#include "glog/logging.h"
#include "tracker/lease_policy.h"
#include "tracker/peer_selection.h"

namespace shoal::sim {

TrackerModel::TrackerModel(TrackerSettings settings)
    : settings_(std::move(settings)),
      holders_(settings_.num_pieces, 0),
      rng_(settings_.random_seed),
      free_at_(std::max(settings_.threads, 0), absl::ZeroDuration()) {}

absl::Duration TrackerModel::Admit(TrackerCall call, absl::Duration now,
                                   absl::Duration* done) {
  ++calls_;
  if (free_at_.empty()) {
    *done = now;
    return now;
  }
  const absl::Duration cost =
      call == TrackerCall::kAnnounce
          ? settings_.announce_cost
          : settings_.call_cost +
                settings_.peer_cost * static_cast<int64_t>(peers_.size());
  auto thread = std::min_element(free_at_.begin(), free_at_.end());
  const absl::Duration start = std::max(now, *thread);
  *thread = start + cost;
  *done = *thread;
  max_wait_ = std::max(max_wait_, start - now);
  total_wait_ += start - now;
  return start;
}

void TrackerModel::Announce(int agent, const std::string& peer_id,
                            const std::string& rack,
                            const std::string& bitfield, bool seeding,
                            absl::Time now) {
  ++announces_;
  auto [it, inserted] = index_of_.try_emplace(agent, peers_.size());
  if (inserted) {
    peers_.emplace_back();
    agent_of_.push_back(agent);
    v1::StoredPeer& fresh = peers_.back();
    fresh.set_peer_id(peer_id);
    fresh.set_address(peer_id);
    fresh.set_datacenter(settings_.datacenter);
    fresh.set_rack(rack);
  }
  v1::StoredPeer& peer = peers_[it->second];
  const std::string& before = peer.bitfield();
  for (uint32_t i = 0; i < settings_.num_pieces; ++i) {
    const ReleasePieceIndex piece(i);
    const int change = static_cast<int>(HasPiece(bitfield, piece)) -
                       static_cast<int>(HasPiece(before, piece));
    holders_[i] += change;
  }
  peer.set_bitfield(bitfield);
  peer.set_pieces_have(CountPieces(bitfield));
  peer.set_state(seeding ? v1::PEER_STATE_SEEDING : v1::PEER_STATE_DOWNLOADING);
  peer.set_last_announce_ms(absl::ToUnixMillis(now));
}

std::vector<int> TrackerModel::GetPeers(int agent, const std::string& peer_id,
                                        uint32_t max_peers) {
  ++peer_requests_;
  // As Tracker::GetPeers: ranked around the asker's own record, or as a
  // peer of this datacenter holding nothing before its first announce.
  tracker::Asker asker{peer_id, settings_.datacenter, "", ""};
  if (auto it = index_of_.find(agent); it != index_of_.end()) {
    const v1::StoredPeer& self = peers_[it->second];
    asker.rack = self.rack();
    asker.bitfield = self.bitfield();
  }
  tracker::RankOptions options;
  options.limit = max_peers == 0
                      ? settings_.max_peers_returned
                      : std::min(max_peers, settings_.max_peers_returned);
  options.include_other_datacenters = false;
  const uint32_t reserved =
      std::min(settings_.other_rack_places, options.limit);
  options.limit -= reserved;
  std::vector<int> out;
  for (const v1::StoredPeer* peer :
       tracker::RankPeers(asker, absl::MakeConstSpan(peers_), options, rng_)) {
    out.push_back(agent_of_[peer - peers_.data()]);
  }
  if (reserved == 0 || asker.rack.empty()) return out;
  // The what-if: the same ranking with the asker's rack unknown, which
  // treats the whole datacenter as one tier; the first peers of other racks.
  const std::string rack = asker.rack;
  asker.rack.clear();
  options.limit += 2 * reserved;
  uint32_t taken = 0;
  for (const v1::StoredPeer* peer :
       tracker::RankPeers(asker, absl::MakeConstSpan(peers_), options, rng_)) {
    if (taken == reserved) break;
    if (peer->rack() == rack) continue;
    out.push_back(agent_of_[peer - peers_.data()]);
    ++taken;
  }
  return out;
}

v1::OriginLeaseResponse TrackerModel::RequestLease(
    int agent, const v1::OriginLeaseRequest& request, absl::Time now) {
  ++lease_requests_;
  absl::StatusOr<tracker::LeaseAsk> ask = tracker::ParseLeaseAsk(
      request, settings_.release_id, settings_.num_pieces,
      settings_.max_pieces_per_lease_request);
  CHECK(ask.ok()) << ask.status();
  const v1::StoredPeer* self = nullptr;
  if (auto it = index_of_.find(agent); it != index_of_.end()) {
    self = &peers_[it->second];
  }
  // Held by a live peer of the datacenter other than the asker.
  auto held_by_others = [&](uint32_t piece) {
    const uint32_t own =
        self != nullptr && HasPiece(self->bitfield(), ReleasePieceIndex(piece));
    return holders_[piece] > own;
  };
  auto acquire = [&](uint32_t piece) {
    return leases_.TryAcquireLease(
        tracker::LeaseKey{settings_.release_id, settings_.datacenter, piece},
        request.peer_id(), settings_.lease_holders, now,
        now + settings_.lease_ttl);
  };
  v1::OriginLeaseResponse response;
  const absl::Status status =
      tracker::AnswerLeaseAsk(*ask, held_by_others, acquire, response);
  CHECK(status.ok()) << status;
  leases_granted_ += response.granted_size();
  return response;
}

absl::Duration TrackerModel::Jittered(absl::Duration interval) {
  return interval * std::uniform_real_distribution<double>(0.9, 1.1)(rng_);
}

}  // namespace shoal::sim
