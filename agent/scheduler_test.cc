// Piece and peer choice, limits, endgame and deadlines. Failures, drops and
// the origin are in scheduler_failures_test.cc.

#include "agent/scheduler.h"

#include <set>
#include <vector>

#include "absl/time/time.h"
#include "agent/scheduler_test_util.h"
#include "common/bitfield.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

TEST(SchedulerCreateTest, RejectsHaveOfAnotherSize) {
  std::mt19937_64 rng(1);
  EXPECT_EQ(Scheduler::Create(TestConfig(), std::vector<uint64_t>(4, kLength),
                              Bitfield(5), rng)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerCreateTest, RejectsAFloorThatCannotDeliverOnePiecePerWindow) {
  SchedulerConfig config = TestConfig();
  config.min_peer_rate = 1000;
  config.rate_window = absl::Seconds(1);
  std::mt19937_64 rng(1);
  EXPECT_EQ(Scheduler::Create(config, std::vector<uint64_t>(4, kLength),
                              Bitfield(4), rng)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerCreateTest, RejectsZeroLimits) {
  SchedulerConfig config = TestConfig();
  config.max_in_flight_per_peer = 0;
  std::mt19937_64 rng(1);
  EXPECT_EQ(Scheduler::Create(config, std::vector<uint64_t>(4, kLength),
                              Bitfield(4), rng)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

using SchedulerPeersTest = SchedulerTest;

TEST_F(SchedulerPeersTest, RefusesToAddAPeerTwice) {
  Make(4);
  ASSERT_TRUE(scheduler().AddPeer(PeerKey(1), Locality::kRack).ok());
  EXPECT_EQ(scheduler().AddPeer(PeerKey(1), Locality::kRack).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(SchedulerPeersTest, RejectsABitfieldOfTheWrongLengthAndDropsThePeer) {
  Make(10);
  ASSERT_TRUE(scheduler().AddPeer(PeerKey(1), Locality::kRack).ok());
  EXPECT_EQ(scheduler().OnBitfield(PeerKey(1), "\xff").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Drops(), (std::vector<std::pair<uint64_t, DropReason>>{
                         {1, DropReason::kMisbehaving}}));
  EXPECT_TRUE(Drops().empty());  // reported once
  EXPECT_TRUE(Next().empty());
}

TEST_F(SchedulerPeersTest, RejectsABitfieldWithSpareBitsSet) {
  Make(10);
  ASSERT_TRUE(scheduler().AddPeer(PeerKey(1), Locality::kRack).ok());
  EXPECT_EQ(scheduler().OnBitfield(PeerKey(1), "\xff\xff").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerPeersTest, RejectsAHaveOutOfRangeAndDropsThePeer) {
  Make(10);
  AddPeer(1, {});
  EXPECT_EQ(scheduler().OnHave(PeerKey(1), ReleasePieceIndex(10)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Drops(), (std::vector<std::pair<uint64_t, DropReason>>{
                         {1, DropReason::kMisbehaving}}));
}

TEST_F(SchedulerPeersTest, EventsFromUnknownPeersAreNotFound) {
  Make(10);
  EXPECT_EQ(scheduler().OnBitfield(PeerKey(9), Claims(10, {1})).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(scheduler().OnHave(PeerKey(9), ReleasePieceIndex(1)).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SchedulerPeersTest, AvailabilityCountsUsablePeersOnly) {
  Make(4);
  AddPeer(1, {0});
  AddPeer(2, {0});
  EXPECT_EQ(scheduler().Availability(ReleasePieceIndex(0)), 2u);
  scheduler().OnHave(PeerKey(1), ReleasePieceIndex(7)).IgnoreError();  // drop
  EXPECT_EQ(scheduler().Availability(ReleasePieceIndex(0)), 1u);
  scheduler().RemovePeer(PeerKey(2));
  EXPECT_EQ(scheduler().Availability(ReleasePieceIndex(0)), 0u);
}

using SchedulerPickTest = SchedulerTest;

TEST_F(SchedulerPickTest, AsksForTheRarestPieceFirst) {
  config().max_in_flight = 1;
  Make(3);
  AddPeer(1, {0, 1, 2});
  AddPeer(2, {1, 2});
  AddPeer(3, {2});
  EXPECT_EQ(Picked(Next()),
            (std::vector<std::pair<uint64_t, uint32_t>>{{1, 0}}));
}

TEST_F(SchedulerPickTest, BreaksTiesAtRandom) {
  config().max_in_flight = 1;
  std::set<uint32_t> first;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    rng().seed(seed);
    Make(16);
    AddPeer(1, All(16));
    first.insert(Next().at(0).piece.value());
  }
  EXPECT_GE(first.size(), 5u);
}

TEST_F(SchedulerPickTest, TheSameSeedMakesTheSamePicks) {
  config().max_in_flight_per_peer = 4;
  Make(16);
  AddPeer(1, All(16));
  const auto a = Picked(Next());
  rng().seed(kSeed);
  Make(16);
  AddPeer(1, All(16));
  EXPECT_EQ(Picked(Next()), a);
}

TEST_F(SchedulerPickTest, AsksTheNearestHolder) {
  Make(1);
  AddPeer(1, {0}, Locality::kRemote);
  AddPeer(2, {0}, Locality::kDatacenter);
  AddPeer(3, {0}, Locality::kRack);
  EXPECT_EQ(Picked(Next()),
            (std::vector<std::pair<uint64_t, uint32_t>>{{3, 0}}));
}

TEST_F(SchedulerPickTest, LeavesToARackPeerWhatItHolds) {
  Make(3);
  AddPeer(1, {0, 1}, Locality::kRack);  // one request at a time
  AddPeer(2, {0, 1, 2}, Locality::kDatacenter);
  const auto picked = Picked(Next());
  ASSERT_EQ(picked.size(), 2u);
  for (const auto& [peer, piece] : picked) {
    EXPECT_EQ(peer == 2, piece == 2) << peer << " asked for " << piece;
  }
}

TEST_F(SchedulerPickTest, GoesFartherWhenTheRackHolderFailed) {
  Make(1);
  AddPeer(1, {0}, Locality::kRack);
  AddPeer(2, {0}, Locality::kDatacenter);
  ASSERT_EQ(Picked(Next()),
            (std::vector<std::pair<uint64_t, uint32_t>>{{1, 0}}));
  EXPECT_EQ(Fail(1, 0, FailureReason::kError), PeerVerdict::kKeep);
  EXPECT_EQ(Picked(Next()),
            (std::vector<std::pair<uint64_t, uint32_t>>{{2, 0}}));
}

TEST_F(SchedulerPickTest, PrefersAnIncompleteHolderToACompletePeer) {
  Make(2, /*have=*/{1});
  AddPeer(1, {0, 1});
  AddPeer(2, {0});
  EXPECT_EQ(Picked(Next()),
            (std::vector<std::pair<uint64_t, uint32_t>>{{2, 0}}));
}

TEST_F(SchedulerPickTest, PrefersFasterHolders) {
  config().max_in_flight = 2;
  Make(6);
  AddPeer(1, All(6));
  AddPeer(2, All(6));
  const std::vector<Assignment> first = Next();
  ASSERT_EQ(first.size(), 2u);
  const Assignment& fast = first[0].peer == PeerKey(1) ? first[0] : first[1];
  const Assignment& slow = first[0].peer == PeerKey(1) ? first[1] : first[0];
  Verify(fast, absl::Seconds(1));
  Verify(slow, absl::Seconds(9));  // now 10 x slower per byte
  for (int i = 0; i < 2; ++i) {
    const std::vector<Assignment> next = Next();
    ASSERT_EQ(next.size(), 2u);  // one each; the first goes to the fast one
    EXPECT_EQ(next[0].peer, PeerKey(1));
    Verify(next[0], absl::Seconds(1));
    Verify(next[1], absl::Seconds(1));
  }
}

TEST_F(SchedulerPickTest, LimitsRequestsPerPeer) {
  config().max_in_flight_per_peer = 3;
  Make(10);
  AddPeer(1, All(10));
  EXPECT_EQ(Next().size(), 3u);
  EXPECT_TRUE(Next().empty());
}

TEST_F(SchedulerPickTest, LimitsRequestsInTotalAcrossPeers) {
  config().max_in_flight = 3;
  Make(10);
  for (uint64_t peer = 1; peer <= 5; ++peer) AddPeer(peer, All(10));
  std::set<uint64_t> peers;
  for (const auto& [peer, piece] : Picked(Next())) peers.insert(peer);
  EXPECT_EQ(peers.size(), 3u);
}

TEST_F(SchedulerPickTest, NeverAsksForAPieceTwiceOutsideEndgame) {
  config().max_in_flight_per_peer = 2;
  Make(10);
  AddPeer(1, All(10));
  AddPeer(2, All(10));
  std::set<uint32_t> pieces;
  for (const auto& [peer, piece] : Picked(Next())) pieces.insert(piece);
  EXPECT_EQ(pieces.size(), 4u);
}

TEST_F(SchedulerPickTest, VerifiedPiecesCompleteTheRelease) {
  config().max_in_flight_per_peer = 2;
  Make(2);
  AddPeer(1, All(2), Locality::kDatacenter);
  for (const Assignment& a : Next()) Verify(a, absl::Seconds(1));
  EXPECT_TRUE(scheduler().complete());
  EXPECT_TRUE(Next().empty());
  const Progress p = scheduler().progress();
  EXPECT_EQ(p.pieces_verified, 2u);
  EXPECT_EQ(p.bytes_from_peers[static_cast<int>(Locality::kDatacenter)],
            2 * kLength);
}

TEST_F(SchedulerPickTest, ResumesFromWhatItHas) {
  config().max_in_flight_per_peer = 4;
  Make(3, /*have=*/{0, 2});
  AddPeer(1, All(3));
  EXPECT_EQ(Picked(Next()),
            (std::vector<std::pair<uint64_t, uint32_t>>{{1, 1}}));
}

using SchedulerEndgameTest = SchedulerTest;

TEST_F(SchedulerEndgameTest, AsksAnotherHolderForAnOverdueLastPiece) {
  Make(1);
  AddPeer(1, {0});
  AddPeer(2, {0});
  const std::vector<Assignment> first = Next();
  ASSERT_EQ(first.size(), 1u);
  Advance(absl::Seconds(1));  // typical piece time: 1 s; overdue after 2 s
  EXPECT_TRUE(Next().empty());
  Advance(absl::Seconds(1.5));
  const std::vector<Assignment> copy = Next();
  ASSERT_EQ(copy.size(), 1u);
  EXPECT_TRUE(copy[0].endgame);
  EXPECT_NE(copy[0].peer, first[0].peer);
  EXPECT_TRUE(scheduler().progress().endgame);
  const std::vector<Cancel> cancels =
      scheduler().OnPieceVerified(copy[0].peer, copy[0].piece, kLength, now());
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].peer, first[0].peer);
  EXPECT_TRUE(scheduler().complete());
}

TEST_F(SchedulerEndgameTest, IsOffWithOneCopy) {
  config().endgame_max_copies = 1;
  Make(1);
  AddPeer(1, {0});
  AddPeer(2, {0});
  ASSERT_EQ(Next().size(), 1u);
  Advance(absl::Seconds(10));
  EXPECT_TRUE(Next().empty());
}

TEST_F(SchedulerEndgameTest, WaitsWhileSomeMissingPieceIsNotRequested) {
  config().max_in_flight = 1;
  Make(2);
  AddPeer(1, {0, 1});
  AddPeer(2, {0});
  ASSERT_EQ(Picked(Next()),
            (std::vector<std::pair<uint64_t, uint32_t>>{{1, 1}}));
  Advance(absl::Seconds(10));
  EXPECT_TRUE(Next().empty());
  EXPECT_FALSE(scheduler().progress().endgame);
}

using SchedulerDeadlineTest = SchedulerTest;

TEST_F(SchedulerDeadlineTest, UsesTheAssumedRateForAnUnmeasuredPeer) {
  Make(2);
  AddPeer(1, All(2));
  // 4 x 1 MiB at 1 MiB/s.
  EXPECT_EQ(Next().at(0).deadline, now() + absl::Seconds(4));
}

TEST_F(SchedulerDeadlineTest, StaysWithinTheBounds) {
  config().min_timeout = absl::Seconds(10);
  Make(2);
  AddPeer(1, All(2));
  EXPECT_EQ(Next().at(0).deadline, now() + absl::Seconds(10));
}

TEST_F(SchedulerDeadlineTest, FollowsThePeersObservedRate) {
  Make(2);
  AddPeer(1, All(2));
  Verify(Next().at(0), absl::Seconds(3));
  EXPECT_EQ(Next().at(0).deadline, now() + absl::Seconds(12));
}

TEST_F(SchedulerDeadlineTest, ExpiredReportsEachLateRequestOnce) {
  Make(2);
  AddPeer(1, All(2));
  const Assignment a = Next().at(0);
  Advance(absl::Seconds(3));
  EXPECT_TRUE(scheduler().Expired(now()).empty());
  Advance(absl::Seconds(1));
  const std::vector<Cancel> expired = scheduler().Expired(now());
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].peer, a.peer);
  EXPECT_EQ(expired[0].piece, a.piece);
  EXPECT_TRUE(scheduler().Expired(now()).empty());
}

}  // namespace
}  // namespace shoal::agent
