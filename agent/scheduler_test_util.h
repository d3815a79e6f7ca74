#pragma once

// A fixture for Scheduler tests: 1 MiB pieces, a seeded generator, a clock
// moved by hand, and shorthands for peers and events.

#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "agent/scheduler.h"
#include "common/bitfield.h"
#include "gtest/gtest.h"

namespace shoal::agent {

inline constexpr uint64_t kLength = 1 << 20;
inline constexpr uint64_t kSeed = 7;

// One request at a time per peer, 1 MiB/s assumed (so 1 s per piece and a
// 4 s deadline), no throughput floor.
inline SchedulerConfig TestConfig() {
  SchedulerConfig c;
  c.max_in_flight_per_peer = 1;
  c.max_in_flight = 8;
  c.min_peer_rate = 0;
  c.assumed_rate = kLength;
  c.timeout_factor = 4;
  c.min_timeout = absl::Seconds(2);
  c.max_timeout = absl::Seconds(60);
  c.busy_backoff = absl::Milliseconds(100);
  c.failure_memory = absl::Seconds(30);
  c.max_origin_in_flight = 2;
  c.origin_retry = absl::Seconds(5);
  return c;
}

// The wire bitfield of `n` pieces with `pieces` set.
inline std::string Claims(uint32_t n, const std::vector<uint32_t>& pieces) {
  Bitfield b(n);
  for (uint32_t p : pieces) b.Set(ReleasePieceIndex(p));
  return b.bytes();
}

inline std::vector<uint32_t> All(uint32_t n) {
  std::vector<uint32_t> all(n);
  for (uint32_t i = 0; i < n; ++i) all[i] = i;
  return all;
}

// (peer, piece) of each assignment, in order.
inline std::vector<std::pair<uint64_t, uint32_t>> Picked(
    const std::vector<Assignment>& assignments) {
  std::vector<std::pair<uint64_t, uint32_t>> out;
  for (const Assignment& a : assignments) {
    out.emplace_back(a.peer.value(), a.piece.value());
  }
  return out;
}

class SchedulerTest : public ::testing::Test {
 protected:
  // A fresh scheduler of `n` pieces holding `have`, with config().
  void Make(uint32_t n, const std::vector<uint32_t>& have = {}) {
    n_ = n;
    Bitfield held(n);
    for (uint32_t p : have) held.Set(ReleasePieceIndex(p));
    absl::StatusOr<std::unique_ptr<Scheduler>> s = Scheduler::Create(
        config_, std::vector<uint64_t>(n, kLength), std::move(held), rng_);
    ASSERT_TRUE(s.ok()) << s.status();
    scheduler_ = *std::move(s);
  }

  void AddPeer(uint64_t id, const std::vector<uint32_t>& pieces,
               Locality locality = Locality::kRack) {
    ASSERT_TRUE(scheduler_->AddPeer(PeerKey(id), locality).ok());
    ASSERT_TRUE(scheduler_->OnBitfield(PeerKey(id), Claims(n_, pieces)).ok());
  }

  std::vector<Assignment> Next() { return scheduler_->NextRequests(now_); }
  void Advance(absl::Duration d) { now_ += d; }
  // Verifies `a` once `took` has passed.
  std::vector<Cancel> Verify(const Assignment& a, absl::Duration took) {
    now_ += took;
    return scheduler_->OnPieceVerified(a.peer, a.piece, a.length, now_);
  }
  PeerVerdict Fail(uint64_t peer, uint32_t piece, FailureReason reason) {
    return scheduler_->OnPieceFailed(PeerKey(peer), ReleasePieceIndex(piece),
                                     reason, now_);
  }
  std::vector<std::pair<uint64_t, DropReason>> Drops() {
    std::vector<std::pair<uint64_t, DropReason>> out;
    for (const Drop& d : scheduler_->PeersToDrop(now_)) {
      out.emplace_back(d.peer.value(), d.reason);
    }
    return out;
  }

  Scheduler& scheduler() { return *scheduler_; }
  SchedulerConfig& config() { return config_; }
  std::mt19937_64& rng() { return rng_; }
  absl::Time now() const { return now_; }

 private:
  SchedulerConfig config_ = TestConfig();
  std::mt19937_64 rng_{kSeed};
  absl::Time now_ = absl::UnixEpoch() + absl::Hours(1);
  uint32_t n_ = 0;
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace shoal::agent
