// Scheduler: the origin fallback. The rules are in scheduler.h.

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/scheduler.h"
#include "glog/logging.h"

namespace shoal::agent {

bool Scheduler::OriginBusyFor(uint32_t piece, absl::Time now) const {
  auto it = origin_.find(piece);
  if (it == origin_.end()) return false;
  const OriginEntry& e = it->second;
  return e.state == OriginState::kFetching ||
         (e.state == OriginState::kAsked &&
          e.since + config_.origin_retry > now);
}

int Scheduler::OriginBusy(absl::Time now) const {
  int busy = 0;
  for (const auto& [piece, unused_entry] : origin_) {
    if (OriginBusyFor(piece, now)) ++busy;
  }
  return busy;
}

bool Scheduler::AllHoldersFailed(uint32_t piece, absl::Time now) const {
  auto failures = avoid_.find(piece);
  if (failures == avoid_.end()) return false;
  for (const auto& [key, peer] : peers_) {
    if (peer.drop || !peer.claims.Get(ReleasePieceIndex(piece))) continue;
    const bool failed = std::any_of(
        failures->second.begin(), failures->second.end(), [&](const Avoid& a) {
          return a.peer == key && a.holder_failed && a.until > now;
        });
    if (!failed) return false;
  }
  return true;
}

std::vector<OriginWant> Scheduler::PiecesWantingOrigin(absl::Time now,
                                                       int limit) {
  std::vector<OriginWant> out;
  const int slots =
      std::min(limit, config_.max_origin_in_flight - OriginBusy(now));
  if (slots <= 0 || complete()) return out;
  // A piece no usable peer claims may still be held by a peer as far as the
  // tracker knows: one that failed it recently and is gone, or one banned
  // for a bad piece. Unless told, the tracker would keep answering "held by
  // peers" (for as long as a banned peer announces: for ever).
  auto a_holder_failed = [&](uint32_t piece) {
    auto it = avoid_.find(piece);
    return it != avoid_.end() &&
           std::any_of(it->second.begin(), it->second.end(),
                       [&](const Avoid& a) {
                         return a.holder_failed && a.until > now;
                       });
  };
  for (uint32_t piece = 0; piece < have_.num_pieces(); ++piece) {
    if (have_.Get(ReleasePieceIndex(piece)) ||
        in_flight_.Get(ReleasePieceIndex(piece))) {
      continue;
    }
    auto it = origin_.find(piece);
    if (it != origin_.end() && (OriginBusyFor(piece, now) ||
                                (it->second.state == OriginState::kWaiting &&
                                 it->second.since > now))) {
      continue;
    }
    if (availability_[piece] == 0) {
      out.push_back({ReleasePieceIndex(piece), a_holder_failed(piece)});
    } else if (AllHoldersFailed(piece, now)) {
      out.push_back({ReleasePieceIndex(piece), true});
    }
  }
  std::shuffle(out.begin(), out.end(), rng_);
  if (out.size() > static_cast<size_t>(slots)) out.resize(slots);
  for (const OriginWant& want : out) {
    origin_[want.piece.value()] = OriginEntry{OriginState::kAsked, now};
  }
  return out;
}

absl::Status Scheduler::OnOriginLease(ReleasePieceIndex piece, bool granted,
                                      absl::Time now) {
  if (piece.value() >= have_.num_pieces()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease for piece ", piece.value(), "; the release has ",
                     have_.num_pieces()));
  }
  auto it = origin_.find(piece.value());
  if (it == origin_.end() || it->second.state != OriginState::kAsked) {
    return absl::FailedPreconditionError(
        absl::StrCat("piece ", piece.value(), " was not awaiting a lease"));
  }
  it->second =
      granted ? OriginEntry{OriginState::kFetching, now}
              : OriginEntry{OriginState::kWaiting, now + config_.origin_retry};
  return absl::OkStatus();
}

std::vector<Cancel> Scheduler::OnPieceFromOrigin(ReleasePieceIndex piece,
                                                 uint64_t bytes,
                                                 absl::Time now) {
  CHECK_LT(piece.value(), have_.num_pieces());
  stats_.bytes_from_origin += bytes;
  return MarkHave(piece.value(), std::nullopt);
}

void Scheduler::OnOriginFailed(ReleasePieceIndex piece, absl::Time now) {
  CHECK_LT(piece.value(), have_.num_pieces());
  auto it = origin_.find(piece.value());
  if (it == origin_.end()) return;
  it->second = OriginEntry{OriginState::kWaiting, now + config_.origin_retry};
}

}  // namespace shoal::agent
