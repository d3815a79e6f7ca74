// Failures, bans, drops, the throughput floor and the origin fallback.

#include <vector>

#include "absl/time/time.h"
#include "agent/scheduler.h"
#include "agent/scheduler_test_util.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

using DropList = std::vector<std::pair<uint64_t, DropReason>>;
using Picks = std::vector<std::pair<uint64_t, uint32_t>>;

using SchedulerFailureTest = SchedulerTest;

TEST_F(SchedulerFailureTest, BadProofBansThePeerForGood) {
  Make(2);
  AddPeer(1, All(2));
  const Assignment a = Next().at(0);
  EXPECT_EQ(Fail(1, a.piece.value(), FailureReason::kBadProof),
            PeerVerdict::kBan);
  EXPECT_TRUE(scheduler().IsBanned(PeerKey(1)));
  EXPECT_EQ(Drops(), (DropList{{1, DropReason::kBanned}}));
  scheduler().RemovePeer(PeerKey(1));
  EXPECT_EQ(scheduler().AddPeer(PeerKey(1), Locality::kRack).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(scheduler().progress().banned, 1u);
  EXPECT_EQ(scheduler().progress().proof_failures, 1u);
}

TEST_F(SchedulerFailureTest, BadProofBansEvenWithoutAKnownRequest) {
  Make(2);
  AddPeer(1, All(2));
  EXPECT_EQ(Fail(1, 0, FailureReason::kBadProof), PeerVerdict::kBan);
  EXPECT_TRUE(scheduler().IsBanned(PeerKey(1)));
}

TEST_F(SchedulerFailureTest, PiecesOfABannedPeerGoToOthers) {
  Make(1);
  AddPeer(1, {0});
  AddPeer(2, {0});
  const Assignment a = Next().at(0);
  Fail(a.peer.value(), 0, FailureReason::kBadProof);
  const uint64_t other = a.peer == PeerKey(1) ? 2 : 1;
  EXPECT_EQ(Picked(Next()), (Picks{{other, 0}}));
}

TEST_F(SchedulerFailureTest, ATimeoutBeforeAnyPieceDropsThePeer) {
  Make(2);
  AddPeer(1, All(2));
  const Assignment a = Next().at(0);
  EXPECT_EQ(Fail(1, a.piece.value(), FailureReason::kTimeout),
            PeerVerdict::kDrop);
  EXPECT_EQ(Drops(), (DropList{{1, DropReason::kFailures}}));
}

TEST_F(SchedulerFailureTest, ConsecutiveFailuresDropAPeer) {
  Make(6);
  AddPeer(1, All(6));
  Verify(Next().at(0), absl::Seconds(1));
  std::vector<PeerVerdict> verdicts;
  for (int i = 0; i < 3; ++i) {
    const Assignment a = Next().at(0);
    verdicts.push_back(Fail(1, a.piece.value(), FailureReason::kTimeout));
  }
  EXPECT_EQ(verdicts,
            (std::vector<PeerVerdict>{PeerVerdict::kKeep, PeerVerdict::kKeep,
                                      PeerVerdict::kDrop}));
}

TEST_F(SchedulerFailureTest, AVerifiedPieceResetsTheFailureCount) {
  Make(8);
  AddPeer(1, All(8));
  for (int round = 0; round < 2; ++round) {
    Verify(Next().at(0), absl::Seconds(1));
    for (int i = 0; i < 2; ++i) {
      const Assignment a = Next().at(0);
      EXPECT_EQ(Fail(1, a.piece.value(), FailureReason::kError),
                PeerVerdict::kKeep);
    }
  }
}

TEST_F(SchedulerFailureTest, RepeatedRefusalsDropAPeerAsLying) {
  Make(6);
  AddPeer(1, All(6));
  std::vector<PeerVerdict> verdicts;
  for (int i = 0; i < 3; ++i) {
    const Assignment a = Next().at(0);
    verdicts.push_back(Fail(1, a.piece.value(), FailureReason::kRefused));
    if (i == 0) {
      EXPECT_EQ(scheduler().Availability(a.piece), 0u);  // no longer claimed
    }
  }
  EXPECT_EQ(verdicts,
            (std::vector<PeerVerdict>{PeerVerdict::kKeep, PeerVerdict::kKeep,
                                      PeerVerdict::kDrop}));
  EXPECT_EQ(Drops(), (DropList{{1, DropReason::kLying}}));
}

TEST_F(SchedulerFailureTest, ARefusedPieceIsAskedOfAnotherHolder) {
  Make(1);
  AddPeer(1, {0});
  AddPeer(2, {0});
  const Assignment a = Next().at(0);
  Fail(a.peer.value(), 0, FailureReason::kRefused);
  const uint64_t other = a.peer == PeerKey(1) ? 2 : 1;
  EXPECT_EQ(Picked(Next()), (Picks{{other, 0}}));
}

TEST_F(SchedulerFailureTest, ABusyPeerIsLeftAloneForAWhile) {
  Make(2);
  AddPeer(1, All(2));
  const Assignment a = Next().at(0);
  EXPECT_EQ(Fail(1, a.piece.value(), FailureReason::kBusy), PeerVerdict::kKeep);
  Advance(absl::Milliseconds(40));  // backoff: 100 ms x [0.5, 1.5)
  EXPECT_TRUE(Next().empty());
  Advance(absl::Milliseconds(120));
  const std::vector<Assignment> retry = Next();
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_NE(retry[0].piece, a.piece);  // that piece waits a little longer
}

// A peer that stalls or lies is dropped at its first timeouts or refusals;
// had only the pieces it failed counted, it would be asked for the others as
// soon as it reconnects, a few pieces per reconnect.
TEST_F(SchedulerFailureTest, APeerDroppedForFailingIsAskedNothingForAWhile) {
  Make(3);
  AddPeer(1, All(3));
  const Assignment a = Next().at(0);
  ASSERT_EQ(Fail(1, a.piece.value(), FailureReason::kTimeout),
            PeerVerdict::kDrop);
  ASSERT_EQ(Drops(), (DropList{{1, DropReason::kFailures}}));
  scheduler().RemovePeer(PeerKey(1));
  Advance(absl::Seconds(5));
  AddPeer(1, All(3));
  EXPECT_TRUE(Next().empty());
  Advance(absl::Seconds(25));  // failure_memory after the drop
  EXPECT_EQ(Next().size(), 1u);
}

TEST_F(SchedulerFailureTest, StaleFailuresAreIgnored) {
  Make(2);
  AddPeer(1, All(2));
  EXPECT_EQ(Fail(1, 0, FailureReason::kTimeout), PeerVerdict::kKeep);
  EXPECT_TRUE(Drops().empty());
}

using SchedulerFloorTest = SchedulerTest;

TEST_F(SchedulerFloorTest, DropsAPeerBelowTheFloor) {
  config().min_peer_rate = kLength;  // 1 MiB/s over 4 s
  config().rate_window = absl::Seconds(4);
  config().grace = absl::Seconds(2);
  config().max_in_flight_per_peer = 2;
  config().min_timeout = absl::Seconds(60);
  Make(10);
  AddPeer(1, All(10));
  const std::vector<Assignment> first = Next();
  ASSERT_EQ(first.size(), 2u);
  Verify(first[0], absl::Seconds(3));
  ASSERT_EQ(Next().size(), 1u);
  Advance(absl::Milliseconds(900));
  EXPECT_TRUE(Drops().empty());  // busy for 3.9 s: not judged yet
  Advance(absl::Milliseconds(100));
  EXPECT_EQ(Drops(), (DropList{{1, DropReason::kSlow}}));
}

TEST_F(SchedulerFloorTest, KeepsAPeerAtTheFloor) {
  config().min_peer_rate = kLength;
  config().rate_window = absl::Seconds(4);
  config().grace = absl::Seconds(2);
  config().max_in_flight_per_peer = 2;
  Make(20);
  AddPeer(1, All(20));
  std::vector<Assignment> in_flight = Next();
  for (int i = 0; i < 12; ++i) {
    Verify(in_flight.front(), absl::Milliseconds(500));
    in_flight.erase(in_flight.begin());
    for (const Assignment& a : Next()) in_flight.push_back(a);
    EXPECT_TRUE(Drops().empty()) << "after " << i + 1 << " pieces";
  }
}

TEST_F(SchedulerFloorTest, DoesNotJudgeAnIdlePeer) {
  config().min_peer_rate = kLength;
  config().rate_window = absl::Seconds(4);
  Make(2, /*have=*/{0, 1});
  AddPeer(1, All(2));
  Advance(absl::Seconds(60));
  EXPECT_TRUE(Drops().empty());
}

using SchedulerOriginTest = SchedulerTest;

TEST_F(SchedulerOriginTest, OffersPiecesNoPeerHolds) {
  Make(4);
  AddPeer(1, {0, 1});
  const std::vector<OriginWant> wants =
      scheduler().PiecesWantingOrigin(now(), 10);
  ASSERT_EQ(wants.size(), 2u);  // max_origin_in_flight
  for (const OriginWant& w : wants) {
    EXPECT_GE(w.piece.value(), 2u);
    EXPECT_FALSE(w.holders_failed);
  }
  EXPECT_TRUE(scheduler().PiecesWantingOrigin(now(), 10).empty());
}

TEST_F(SchedulerOriginTest, DoesNotOfferPiecesAPeerHolds) {
  Make(4);
  AddPeer(1, All(4));
  EXPECT_TRUE(scheduler().PiecesWantingOrigin(now(), 10).empty());
}

TEST_F(SchedulerOriginTest, OffersAPieceWhoseHoldersAllFailedIt) {
  Make(1);
  AddPeer(1, {0});
  ASSERT_EQ(Next().size(), 1u);
  ASSERT_EQ(Fail(1, 0, FailureReason::kError), PeerVerdict::kKeep);
  const std::vector<OriginWant> wants =
      scheduler().PiecesWantingOrigin(now(), 10);
  ASSERT_EQ(wants.size(), 1u);
  EXPECT_TRUE(wants[0].holders_failed);
}

// The tracker counts a banned peer as a holder for as long as it announces;
// unless told that the holder failed, it answers "held by peers" forever.
TEST_F(SchedulerOriginTest, TellsThatTheBannedHolderOfAPieceFailedIt) {
  Make(3);
  AddPeer(1, All(3));
  const Assignment a = Next().at(0);
  ASSERT_EQ(Fail(1, a.piece.value(), FailureReason::kBadProof),
            PeerVerdict::kBan);
  ASSERT_EQ(Drops().size(), 1u);
  scheduler().RemovePeer(PeerKey(1));
  Advance(absl::Hours(1));  // a ban does not wear off
  const std::vector<OriginWant> wants =
      scheduler().PiecesWantingOrigin(now(), 10);
  ASSERT_EQ(wants.size(), 2u);  // max_origin_in_flight
  for (const OriginWant& w : wants) EXPECT_TRUE(w.holders_failed);
}

TEST_F(SchedulerOriginTest, TellsThatAHolderDroppedForFailingFailedForAWhile) {
  Make(2);
  AddPeer(1, All(2));
  const Assignment a = Next().at(0);
  ASSERT_EQ(Fail(1, a.piece.value(), FailureReason::kTimeout),
            PeerVerdict::kDrop);
  ASSERT_EQ(Drops().size(), 1u);
  scheduler().RemovePeer(PeerKey(1));
  std::vector<OriginWant> wants = scheduler().PiecesWantingOrigin(now(), 10);
  ASSERT_EQ(wants.size(), 2u);
  for (const OriginWant& w : wants) EXPECT_TRUE(w.holders_failed) << w.piece;
  Advance(absl::Seconds(30));  // failure_memory
  wants = scheduler().PiecesWantingOrigin(now(), 10);
  ASSERT_EQ(wants.size(), 2u);
  for (const OriginWant& w : wants) EXPECT_FALSE(w.holders_failed) << w.piece;
}

TEST_F(SchedulerOriginTest, AGrantedPieceComesFromTheOriginOnly) {
  Make(1);
  ASSERT_EQ(scheduler().PiecesWantingOrigin(now(), 1).size(), 1u);
  ASSERT_TRUE(
      scheduler().OnOriginLease(ReleasePieceIndex(0), true, now()).ok());
  AddPeer(1, {0});
  EXPECT_TRUE(Next().empty());
  scheduler().OnPieceFromOrigin(ReleasePieceIndex(0), kLength, now());
  EXPECT_TRUE(scheduler().complete());
  EXPECT_EQ(scheduler().progress().bytes_from_origin, kLength);
}

TEST_F(SchedulerOriginTest, OffersADeniedPieceAgainAfterTheRetryTime) {
  Make(1);
  ASSERT_EQ(scheduler().PiecesWantingOrigin(now(), 1).size(), 1u);
  ASSERT_TRUE(
      scheduler().OnOriginLease(ReleasePieceIndex(0), false, now()).ok());
  Advance(absl::Seconds(4));
  EXPECT_TRUE(scheduler().PiecesWantingOrigin(now(), 1).empty());
  Advance(absl::Seconds(1));
  EXPECT_EQ(scheduler().PiecesWantingOrigin(now(), 1).size(), 1u);
}

TEST_F(SchedulerOriginTest, OffersAnUnansweredPieceAgainAfterTheRetryTime) {
  Make(1);
  ASSERT_EQ(scheduler().PiecesWantingOrigin(now(), 1).size(), 1u);
  Advance(absl::Seconds(5));
  EXPECT_EQ(scheduler().PiecesWantingOrigin(now(), 1).size(), 1u);
}

TEST_F(SchedulerOriginTest, RetriesAFailedFetchLater) {
  Make(1);
  ASSERT_EQ(scheduler().PiecesWantingOrigin(now(), 1).size(), 1u);
  ASSERT_TRUE(
      scheduler().OnOriginLease(ReleasePieceIndex(0), true, now()).ok());
  scheduler().OnOriginFailed(ReleasePieceIndex(0), now());
  EXPECT_TRUE(scheduler().PiecesWantingOrigin(now(), 1).empty());
  Advance(absl::Seconds(5));
  EXPECT_EQ(scheduler().PiecesWantingOrigin(now(), 1).size(), 1u);
}

TEST_F(SchedulerOriginTest, ChecksLeaseAnswersAgainstWhatWasAsked) {
  Make(2);
  EXPECT_EQ(scheduler().OnOriginLease(ReleasePieceIndex(2), true, now()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scheduler().OnOriginLease(ReleasePieceIndex(0), true, now()).code(),
            absl::StatusCode::kFailedPrecondition);
  const std::vector<OriginWant> wants =
      scheduler().PiecesWantingOrigin(now(), 1);
  ASSERT_EQ(wants.size(), 1u);
  ASSERT_TRUE(scheduler().OnOriginLease(wants[0].piece, true, now()).ok());
  EXPECT_EQ(scheduler().OnOriginLease(wants[0].piece, true, now()).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace shoal::agent
