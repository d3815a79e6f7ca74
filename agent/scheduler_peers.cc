// Scheduler: peer events, failure accounting, drops and the throughput
// floor. The rules are in scheduler.h.

#include <algorithm>
#include <vector>

#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "agent/scheduler.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

// A busy peer is not asked for the same piece for this many busy_backoffs,
// so that the next try goes to another holder or another piece.
constexpr int kBusyPieceAvoidFactor = 4;
// Busy answers in a row double the backoff up to 2^this times busy_backoff.
constexpr int kMaxBusyDoublings = 3;

}  // namespace

// --- Peers. ---

absl::Status Scheduler::AddPeer(PeerKey peer, Locality locality) {
  if (banned_.count(peer) > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("peer ", peer.value(),
                     " is banned for this release: it sent a bad piece"));
  }
  if (!peers_.try_emplace(peer, locality, have_.num_pieces()).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("peer ", peer.value(), " is known"));
  }
  return absl::OkStatus();
}

void Scheduler::RemovePeer(PeerKey peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  if (!it->second.drop) Count(it->second, -1);
  EndAllRequests(peer);
  peers_.erase(it);
}

absl::Status Scheduler::OnBitfield(PeerKey key, absl::string_view bitfield) {
  auto it = peers_.find(key);
  if (it == peers_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown peer ", key.value()));
  }
  Peer& peer = it->second;
  absl::StatusOr<Bitfield> parsed =
      Bitfield::FromBytes(bitfield, have_.num_pieces());
  if (!parsed.ok()) {
    MarkDrop(key, peer, DropReason::kMisbehaving);
    return absl::InvalidArgumentError(
        absl::StrCat("peer ", key.value(), ": ", parsed.status().message()));
  }
  if (!peer.drop) Count(peer, -1);
  peer.claims = *std::move(parsed);
  peer.claim_count = peer.claims.Count();
  if (!peer.drop) Count(peer, +1);
  return absl::OkStatus();
}

absl::Status Scheduler::OnHave(PeerKey key, ReleasePieceIndex piece) {
  auto it = peers_.find(key);
  if (it == peers_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown peer ", key.value()));
  }
  Peer& peer = it->second;
  if (piece.value() >= have_.num_pieces()) {
    MarkDrop(key, peer, DropReason::kMisbehaving);
    return absl::InvalidArgumentError(
        absl::StrCat("peer ", key.value(), " announced piece ", piece.value(),
                     "; the release has ", have_.num_pieces()));
  }
  if (peer.claims.Get(piece)) return absl::OkStatus();
  peer.claims.Set(piece);
  ++peer.claim_count;
  if (!peer.drop) Claim(peer, piece.value(), +1);
  return absl::OkStatus();
}

void Scheduler::Claim(const Peer& peer, uint32_t piece, int delta) {
  availability_[piece] += delta;
  if (peer.locality == Locality::kRack) in_rack_[piece] += delta;
}

void Scheduler::Count(const Peer& peer, int delta) {
  if (peer.claim_count == 0) return;
  for (uint32_t i = 0; i < have_.num_pieces(); ++i) {
    if (peer.claims.Get(ReleasePieceIndex(i))) Claim(peer, i, delta);
  }
}

void Scheduler::MarkDrop(PeerKey key, Peer& peer, DropReason reason) {
  // A ban overrides an earlier drop (it must reach the engine); other
  // reasons keep the first.
  if (peer.drop && (reason != DropReason::kBanned || *peer.drop == reason)) {
    return;
  }
  if (!peer.drop) {
    Count(peer, -1);
    EndAllRequests(key);
  }
  peer.drop = reason;
  peer.drop_reported = false;
  pending_drops_.push_back(key);
}

// --- Failures and drops. ---

PeerVerdict Scheduler::OnPieceFailed(PeerKey key, ReleasePieceIndex piece,
                                     FailureReason reason, absl::Time now) {
  CHECK_LT(piece.value(), have_.num_pieces());
  const bool requested = EndRequest(key, piece.value());
  auto it = peers_.find(key);
  // Marks what the peer claims (and we lack) as failed by it until `until`.
  // The tracker goes on counting a dropped or banned peer as the holder of
  // all it claims; the origin fallback must say that holder failed
  // (PiecesWantingOrigin), or be told "held by peers" while it announces.
  auto fail_claims = [&](const Peer& peer, absl::Time until) {
    for (uint32_t i = 0; i < have_.num_pieces(); ++i) {
      const ReleasePieceIndex claimed(i);
      if (peer.claims.Get(claimed) && !have_.Get(claimed)) {
        AddAvoid(i, key, until, /*failed=*/true);
      }
    }
  };
  if (reason == FailureReason::kBadProof) {
    ++stats_.proof_failures;
    banned_.insert(key);
    if (it != peers_.end()) {
      fail_claims(it->second, absl::InfiniteFuture());
      MarkDrop(key, it->second, DropReason::kBanned);
    }
    return PeerVerdict::kBan;
  }
  if (it == peers_.end()) return PeerVerdict::kKeep;
  Peer& peer = it->second;
  if (peer.drop) return PeerVerdict::kDrop;
  if (!requested) return PeerVerdict::kKeep;
  const PeerVerdict verdict =
      CountFailure(key, peer, piece.value(), reason, now);
  // Dropped for failing (its other requests in flight end unanswered): for
  // failure_memory it is asked for none of its pieces when it reconnects,
  // and none of them waits for it rather than the origin.
  if (verdict == PeerVerdict::kDrop) {
    fail_claims(peer, now + config_.failure_memory);
  }
  return verdict;
}

PeerVerdict Scheduler::CountFailure(PeerKey key, Peer& peer, uint32_t piece,
                                    FailureReason reason, absl::Time now) {
  switch (reason) {
    case FailureReason::kBusy: {
      // Doubling with jitter, so that many askers of one popular peer
      // spread their retries instead of hammering it in step.
      const int doublings = std::min(peer.busy_streak++, kMaxBusyDoublings);
      peer.backoff_until = now + config_.busy_backoff * (1 << doublings) *
                                     absl::Uniform(rng_, 0.5, 1.5);
      AddAvoid(piece, key, now + kBusyPieceAvoidFactor * config_.busy_backoff,
               /*failed=*/false);
      return PeerVerdict::kKeep;
    }
    case FailureReason::kRefused:
      AddAvoid(piece, key, now + config_.failure_memory, /*failed=*/true);
      if (peer.claims.Get(ReleasePieceIndex(piece))) {
        peer.claims.Set(ReleasePieceIndex(piece), false);
        --peer.claim_count;
        Claim(peer, piece, -1);
      }
      if (++peer.refusals < config_.max_refusals) return PeerVerdict::kKeep;
      MarkDrop(key, peer, DropReason::kLying);
      return PeerVerdict::kDrop;
    case FailureReason::kTimeout:
    case FailureReason::kError:
      AddAvoid(piece, key, now + config_.failure_memory, /*failed=*/true);
      // A peer that let its very first request time out is not worth a
      // connection slot (it stalls, or is far below any useful rate).
      if (++peer.consecutive_failures < config_.max_consecutive_failures &&
          (reason != FailureReason::kTimeout || peer.bytes_verified > 0)) {
        return PeerVerdict::kKeep;
      }
      MarkDrop(key, peer, DropReason::kFailures);
      return PeerVerdict::kDrop;
    case FailureReason::kBadProof:
      LOG(FATAL) << "bad proofs are handled by OnPieceFailed";
  }
  return PeerVerdict::kKeep;
}

std::vector<Cancel> Scheduler::Expired(absl::Time now) {
  std::vector<Cancel> out;
  for (auto& [piece, requests] : requests_) {
    for (Request& r : requests) {
      if (!r.expired && r.deadline <= now) {
        r.expired = true;
        out.push_back({r.peer, ReleasePieceIndex(piece)});
      }
    }
  }
  return out;
}

std::vector<Drop> Scheduler::PeersToDrop(absl::Time now) {
  // Only peers with requests in flight can fall below the floor.
  std::vector<PeerKey> busy;
  for (const auto& [unused_piece, requests] : requests_) {
    for (const Request& r : requests) busy.push_back(r.peer);
  }
  std::sort(busy.begin(), busy.end());
  busy.erase(std::unique(busy.begin(), busy.end()), busy.end());
  for (PeerKey key : busy) {
    auto it = peers_.find(key);
    if (it != peers_.end() && !it->second.drop) {
      CheckThroughput(it->second, key, now);
    }
  }
  std::vector<Drop> out;
  for (PeerKey key : pending_drops_) {
    auto it = peers_.find(key);
    if (it == peers_.end() || it->second.drop_reported) continue;
    it->second.drop_reported = true;
    out.push_back({key, *it->second.drop});
  }
  pending_drops_.clear();
  return out;
}

void Scheduler::CheckThroughput(Peer& peer, PeerKey key, absl::Time now) {
  if (config_.min_peer_rate <= 0 || peer.in_flight == 0) return;
  const absl::Duration window = config_.rate_window;
  while (!peer.delivered.empty() &&
         peer.delivered.front().first <= now - window) {
    peer.delivered.pop_front();
  }
  if (now - peer.busy_since < std::max(config_.grace, window)) return;
  double bytes = 0;
  for (const auto& [unused_time, n] : peer.delivered) bytes += n;
  if (bytes < config_.min_peer_rate * absl::ToDoubleSeconds(window)) {
    MarkDrop(key, peer, DropReason::kSlow);
  }
}

}  // namespace shoal::agent
