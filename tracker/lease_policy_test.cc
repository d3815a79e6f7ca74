#include "tracker/lease_policy.h"

#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::tracker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

v1::OriginLeaseRequest Request(const std::vector<uint32_t>& pieces,
                               const std::vector<uint32_t>& failed = {}) {
  v1::OriginLeaseRequest request;
  for (uint32_t piece : pieces) request.add_pieces(piece);
  for (uint32_t piece : failed) request.add_holders_failed(piece);
  return request;
}

TEST(ParseLeaseAskTest, DropsDuplicatesAndKeepsRequestOrder) {
  absl::StatusOr<LeaseAsk> ask =
      ParseLeaseAsk(Request({3, 1, 3, 2}), "r", 10, 100);
  ASSERT_TRUE(ask.ok()) << ask.status();
  EXPECT_THAT(ask->pieces, ElementsAre(3, 1, 2));
  EXPECT_THAT(ask->holders_failed, IsEmpty());
}

TEST(ParseLeaseAskTest, FailedHolderPieceCountsAsAskedFor) {
  absl::StatusOr<LeaseAsk> ask =
      ParseLeaseAsk(Request({1}, {4, 1}), "r", 10, 100);
  ASSERT_TRUE(ask.ok()) << ask.status();
  EXPECT_THAT(ask->pieces, ElementsAre(1, 4));
  EXPECT_THAT(ask->holders_failed, UnorderedElementsAre(1, 4));
}

TEST(ParseLeaseAskTest, ConsidersAtMostMaxPieces) {
  absl::StatusOr<LeaseAsk> ask =
      ParseLeaseAsk(Request({0, 1, 2}, {5}), "r", 10, 2);
  ASSERT_TRUE(ask.ok()) << ask.status();
  EXPECT_THAT(ask->pieces, ElementsAre(0, 1));
  EXPECT_THAT(ask->holders_failed, IsEmpty());
}

TEST(ParseLeaseAskTest, RejectsPieceOutOfRangeInEitherList) {
  absl::StatusOr<LeaseAsk> ask = ParseLeaseAsk(Request({10}), "rel", 10, 100);
  EXPECT_EQ(ask.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ask.status().message(), HasSubstr("release rel has 10 pieces"));
  EXPECT_FALSE(ParseLeaseAsk(Request({}, {12}), "rel", 10, 100).ok());
}

// A store double: grants each piece to the first asker only.
struct OneLeasePerPiece {
  std::set<uint32_t> leased;
  absl::StatusOr<bool> operator()(uint32_t piece) {
    return leased.insert(piece).second;
  }
};

TEST(AnswerLeaseAskTest, HeldPiecesGoToPeersOthersAreLeasedOnce) {
  LeaseAsk ask{{0, 1, 2}, {}};
  OneLeasePerPiece store;
  store.leased.insert(2);
  v1::OriginLeaseResponse response;
  ASSERT_TRUE(AnswerLeaseAsk(
                  ask, [](uint32_t piece) { return piece == 0; },
                  [&](uint32_t piece) { return store(piece); }, response)
                  .ok());
  EXPECT_THAT(response.held_by_peers(), ElementsAre(0));
  EXPECT_THAT(response.granted(), ElementsAre(1));
  EXPECT_THAT(response.leased_to_others(), ElementsAre(2));
}

TEST(AnswerLeaseAskTest, FailedHoldersLetAHeldPieceBeLeased) {
  LeaseAsk ask{{0}, {0}};
  OneLeasePerPiece store;
  v1::OriginLeaseResponse response;
  ASSERT_TRUE(AnswerLeaseAsk(
                  ask, [](uint32_t) { return true; },
                  [&](uint32_t piece) { return store(piece); }, response)
                  .ok());
  EXPECT_THAT(response.granted(), ElementsAre(0));
  EXPECT_THAT(response.held_by_peers(), IsEmpty());
}

TEST(AnswerLeaseAskTest, StopsAtTheFirstStoreError) {
  LeaseAsk ask{{0, 1}, {}};
  v1::OriginLeaseResponse response;
  int calls = 0;
  absl::Status status = AnswerLeaseAsk(
      ask, [](uint32_t) { return false; },
      [&](uint32_t) -> absl::StatusOr<bool> {
        ++calls;
        return absl::UnavailableError("store down");
      },
      response);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace shoal::tracker
