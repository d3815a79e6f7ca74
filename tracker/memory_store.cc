#include "tracker/memory_store.h"

#include <algorithm>

namespace shoal::tracker {
namespace {

// Below this many entries a sweep is not worth its scan.
constexpr size_t kMinSweepEntries = 1024;

// An entry is live while its expiry is strictly after `now`.
bool Live(absl::Time expires, absl::Time now) { return expires > now; }

}  // namespace

MemoryStore::MemoryStore()
    : peer_sweep_at_(kMinSweepEntries), lease_sweep_at_(kMinSweepEntries) {}

void MemoryStore::NoteNow(absl::Time now) {
  latest_now_ = std::max(latest_now_, now);
}

size_t MemoryStore::TrimSwarm(Swarm& swarm, absl::Time now) {
  for (auto it = swarm.begin(); it != swarm.end();) {
    if (Live(it->second.expires, now)) {
      ++it;
    } else {
      swarm.erase(it++);
      --peer_count_;
    }
  }
  return swarm.size();
}

size_t MemoryStore::TrimHolders(Holders& holders, absl::Time now) {
  for (auto it = holders.begin(); it != holders.end();) {
    if (Live(it->second, now)) {
      ++it;
    } else {
      holders.erase(it++);
      --lease_count_;
    }
  }
  return holders.size();
}

void MemoryStore::SweepPeers() {
  for (auto rit = swarms_.begin(); rit != swarms_.end();) {
    ReleaseSwarms& by_dc = rit->second;
    for (auto dit = by_dc.begin(); dit != by_dc.end();) {
      if (TrimSwarm(dit->second, latest_now_) == 0) {
        by_dc.erase(dit++);
      } else {
        ++dit;
      }
    }
    if (by_dc.empty()) {
      swarms_.erase(rit++);
    } else {
      ++rit;
    }
  }
  peer_sweep_at_ = std::max(kMinSweepEntries, 2 * peer_count_);
}

void MemoryStore::SweepLeases() {
  for (auto sit = leases_.begin(); sit != leases_.end();) {
    SwarmLeases& pieces = sit->second;
    for (auto pit = pieces.begin(); pit != pieces.end();) {
      if (TrimHolders(pit->second, latest_now_) == 0) {
        pieces.erase(pit++);
      } else {
        ++pit;
      }
    }
    if (pieces.empty()) {
      leases_.erase(sit++);
    } else {
      ++sit;
    }
  }
  lease_sweep_at_ = std::max(kMinSweepEntries, 2 * lease_count_);
}

absl::Status MemoryStore::PutPeer(const std::string& release_id,
                                  const v1::StoredPeer& peer,
                                  absl::Time expires) {
  absl::MutexLock lock(&mu_);
  Swarm& swarm = swarms_[release_id][peer.datacenter()];
  auto [it, inserted] = swarm.try_emplace(peer.peer_id());
  it->second = PeerEntry{peer, expires};
  if (inserted && ++peer_count_ >= peer_sweep_at_) SweepPeers();
  return absl::OkStatus();
}

absl::Status MemoryStore::RemovePeer(const std::string& release_id,
                                     const std::string& datacenter,
                                     const std::string& peer_id) {
  absl::MutexLock lock(&mu_);
  auto rit = swarms_.find(release_id);
  if (rit == swarms_.end()) return absl::OkStatus();
  auto dit = rit->second.find(datacenter);
  if (dit == rit->second.end()) return absl::OkStatus();
  if (dit->second.erase(peer_id) > 0) --peer_count_;
  if (dit->second.empty()) rit->second.erase(dit);
  if (rit->second.empty()) swarms_.erase(rit);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::StoredPeer>> MemoryStore::ListPeers(
    const std::string& release_id, const std::string& datacenter,
    absl::Time now) {
  absl::MutexLock lock(&mu_);
  NoteNow(now);
  std::vector<v1::StoredPeer> peers;
  auto rit = swarms_.find(release_id);
  if (rit == swarms_.end()) return peers;
  ReleaseSwarms& by_dc = rit->second;
  for (auto dit = by_dc.begin(); dit != by_dc.end();) {
    if (!datacenter.empty() && dit->first != datacenter) {
      ++dit;
      continue;
    }
    for (const auto& [id, entry] : dit->second) {
      if (Live(entry.expires, now)) peers.push_back(entry.peer);
    }
    if (TrimSwarm(dit->second, now) == 0) {
      by_dc.erase(dit++);
    } else {
      ++dit;
    }
  }
  if (by_dc.empty()) swarms_.erase(rit);
  return peers;
}

absl::StatusOr<std::vector<std::string>> MemoryStore::ListSwarms(
    absl::Time now) {
  absl::MutexLock lock(&mu_);
  NoteNow(now);
  SweepPeers();
  std::vector<std::string> releases;
  releases.reserve(swarms_.size());
  for (const auto& [release_id, by_dc] : swarms_) {
    releases.push_back(release_id);
  }
  return releases;
}

absl::StatusOr<bool> MemoryStore::TryAcquireLease(const LeaseKey& key,
                                                  const std::string& peer_id,
                                                  int max_holders,
                                                  absl::Time now,
                                                  absl::Time expires) {
  absl::MutexLock lock(&mu_);
  NoteNow(now);
  SwarmLeases& pieces = leases_[SwarmKey(key.release_id, key.datacenter)];
  Holders& holders = pieces[key.piece];
  const size_t live = TrimHolders(holders, now);
  auto it = holders.find(peer_id);
  if (it != holders.end()) {
    it->second = expires;
    return true;
  }
  if (static_cast<int64_t>(live) < max_holders) {
    holders.emplace(peer_id, expires);
    if (++lease_count_ >= lease_sweep_at_) SweepLeases();
    return true;
  }
  // Refused: leave no empty containers behind for a piece nobody holds.
  if (holders.empty()) {
    pieces.erase(key.piece);
    if (pieces.empty()) leases_.erase(SwarmKey(key.release_id, key.datacenter));
  }
  return false;
}

absl::StatusOr<uint32_t> MemoryStore::CountLeases(const std::string& release_id,
                                                  const std::string& datacenter,
                                                  absl::Time now) {
  absl::MutexLock lock(&mu_);
  NoteNow(now);
  auto sit = leases_.find(SwarmKey(release_id, datacenter));
  if (sit == leases_.end()) return 0u;
  SwarmLeases& pieces = sit->second;
  uint32_t count = 0;
  for (auto pit = pieces.begin(); pit != pieces.end();) {
    const size_t live = TrimHolders(pit->second, now);
    count += static_cast<uint32_t>(live);
    if (live == 0) {
      pieces.erase(pit++);
    } else {
      ++pit;
    }
  }
  if (pieces.empty()) leases_.erase(sit);
  return count;
}

absl::Status MemoryStore::PutRelease(const v1::StoredRelease& release) {
  absl::MutexLock lock(&mu_);
  releases_[release.release_id()] = release;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::StoredRelease>> MemoryStore::GetRelease(
    const std::string& release_id) {
  absl::MutexLock lock(&mu_);
  auto it = releases_.find(release_id);
  if (it == releases_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::vector<v1::StoredRelease>> MemoryStore::ListReleases(
    const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::StoredRelease> releases;
  for (const auto& [id, release] : releases_) {  // std::map: sorted by id
    if (name.empty() || release.name() == name) releases.push_back(release);
  }
  return releases;
}

absl::StatusOr<ChannelRecord> MemoryStore::PutChannel(
    const ChannelRecord& channel) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = channels_.try_emplace(channel.channel);
  const uint64_t generation = inserted ? 1 : it->second.generation + 1;
  it->second = channel;
  it->second.generation = generation;
  return it->second;
}

absl::StatusOr<std::optional<ChannelRecord>> MemoryStore::GetChannel(
    const std::string& channel) {
  absl::MutexLock lock(&mu_);
  auto it = channels_.find(channel);
  if (it == channels_.end()) return std::nullopt;
  return it->second;
}

absl::Status MemoryStore::Ping() { return absl::OkStatus(); }

size_t MemoryStore::EntryCount() {
  absl::MutexLock lock(&mu_);
  return peer_count_ + lease_count_;
}

}  // namespace shoal::tracker
