#include "tracker/peer_memo.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace shoal::tracker {

PeerMemo::PeerMemo(size_t max_entries, absl::Duration window,
                   int max_per_window, absl::Duration forget_after)
    : max_entries_(max_entries),
      window_(window),
      max_per_window_(max_per_window),
      forget_after_(forget_after) {
  CHECK_GE(max_entries, 1u);
  CHECK_GE(max_per_window, 1);
  CHECK_GT(window, absl::ZeroDuration());
  CHECK_GT(forget_after, absl::ZeroDuration());
}

absl::Status PeerMemo::Admit(const std::string& peer_id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Peer& peer = FindOrAdd(peer_id, now);
  peer.last_seen = now;
  if (now >= peer.window_start + window_) {
    peer.window_start = now;
    peer.announces = 0;
  }
  if (peer.announces >= max_per_window_) {
    const absl::Duration wait = peer.window_start + window_ - now;
    return absl::ResourceExhaustedError(absl::StrCat(
        "peer ", peer_id, " announced ", peer.announces, " times within ",
        absl::FormatDuration(window_), ", the limit; retry in ",
        std::ceil(absl::ToDoubleSeconds(wait)), "s"));
  }
  ++peer.announces;
  return absl::OkStatus();
}

absl::Time PeerMemo::RecordProgress(const std::string& peer_id,
                                    const std::string& release_id,
                                    uint32_t pieces_have, absl::Time now) {
  absl::MutexLock lock(&mu_);
  Peer* peer = &FindOrAdd(peer_id, now);
  auto it = peer->releases.find(release_id);
  if (it == peer->releases.end()) {
    Reserve(now);
    // Reserve may have dropped the peer itself.
    peer = &FindOrAdd(peer_id, now);
    it = peer->releases.emplace(release_id, Progress{}).first;
    ++entries_;
  }
  peer->last_seen = std::max(peer->last_seen, now);
  Progress& progress = it->second;
  if (Stale(progress.last_seen, now) || pieces_have > progress.pieces_have) {
    progress.last_progress = now;
  }
  progress.pieces_have = pieces_have;
  progress.last_seen = now;
  return progress.last_progress;
}

void PeerMemo::ForgetRelease(const std::string& peer_id,
                             const std::string& release_id) {
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(peer_id);
  if (it == peers_.end()) return;
  entries_ -= it->second.releases.erase(release_id);
}

size_t PeerMemo::entries() const {
  absl::MutexLock lock(&mu_);
  return entries_;
}

PeerMemo::Peer& PeerMemo::FindOrAdd(const std::string& peer_id,
                                    absl::Time now) {
  auto it = peers_.find(peer_id);
  if (it != peers_.end()) return it->second;
  Reserve(now);
  ++entries_;
  return peers_[peer_id];
}

void PeerMemo::Reserve(absl::Time now) {
  if (entries_ < max_entries_) return;
  const size_t before = entries_;
  for (auto pit = peers_.begin(); pit != peers_.end();) {
    Peer& peer = pit->second;
    for (auto rit = peer.releases.begin(); rit != peer.releases.end();) {
      if (Stale(rit->second.last_seen, now)) {
        peer.releases.erase(rit++);
        --entries_;
      } else {
        ++rit;
      }
    }
    if (peer.releases.empty() && Stale(peer.last_seen, now)) {
      peers_.erase(pit++);
      --entries_;
    } else {
      ++pit;
    }
  }
  // A sweep that frees little would repeat on every insert.
  if (before - entries_ < before / 4 + 1) {
    peers_.clear();
    entries_ = 0;
  }
}

}  // namespace shoal::tracker
