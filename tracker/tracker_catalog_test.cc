// The release catalog and channel rollouts.

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shoal/v1/manifest.pb.h"
#include "tracker/tracker.h"
#include "tracker/tracker_test_util.h"

namespace shoal::tracker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::kValidFor;
using testing::Pieces;
using testing::Release;
using testing::ReleaseSpec;
using testing::TrackerTest;

class CatalogTest : public TrackerTest {
 protected:
  absl::StatusOr<v1::RegisterReleaseResponse> RegisterBytes(
      const std::string& manifest,
      const std::vector<std::string>& urls = {"https://origin.example/r"}) {
    v1::RegisterReleaseRequest request;
    request.set_manifest(manifest);
    for (const std::string& url : urls) request.add_origin_urls(url);
    return tracker().RegisterRelease(request);
  }

  absl::StatusOr<v1::ReleaseInfo> Get(const std::string& release) {
    v1::GetReleaseRequest request;
    request.set_release(release);
    return tracker().GetRelease(request);
  }
};

TEST_F(CatalogTest, RegistersAVerifiedRelease) {
  const std::string manifest = SignedManifest(Pieces(20));
  absl::StatusOr<v1::RegisterReleaseResponse> response =
      RegisterBytes(manifest);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(response->created());
  absl::StatusOr<v1::ReleaseInfo> info = Get(response->release_id());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "game-server");
  EXPECT_EQ(info->version(), "1.0");
  EXPECT_EQ(info->manifest(), manifest);
  EXPECT_EQ(info->total_pieces(), 20u);
  EXPECT_EQ(info->total_size(), 20u * 16384);
  EXPECT_EQ(info->sequence(), 1u);
  EXPECT_EQ(info->registered_ms(), absl::ToUnixMillis(testing::kStart));
  EXPECT_THAT(info->origin_urls(), ElementsAre("https://origin.example/r"));
}

TEST_F(CatalogTest, RefusesManifestOfUntrustedKey) {
  absl::Status status =
      RegisterBytes(SignedManifest(ReleaseSpec(), stranger_)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(status.message()), HasSubstr("untrusted key"));
}

TEST_F(CatalogTest, RefusesExpiredManifest) {
  clock_.Advance(kValidFor);
  absl::Status status = RegisterBytes(SignedManifest(ReleaseSpec())).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("expired"));
}

TEST_F(CatalogTest, RefusesTamperedManifest) {
  v1::SignedManifest signed_manifest;
  ASSERT_TRUE(signed_manifest.ParseFromString(SignedManifest(ReleaseSpec())));
  std::string* body = signed_manifest.mutable_body();
  (*body)[body->size() - 1] ^= 0x01;
  EXPECT_EQ(RegisterBytes(signed_manifest.SerializeAsString()).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(CatalogTest, RefusesBytesThatAreNoManifest) {
  EXPECT_EQ(RegisterBytes("\xff\xff garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CatalogTest, RefusesReleaseWithMorePiecesThanABitfieldHolds) {
  const uint32_t limit = kMaxBitfieldBytes * 8;
  EXPECT_TRUE(RegisterBytes(SignedManifest(Pieces(limit))).ok());
  absl::Status status =
      RegisterBytes(SignedManifest(Pieces(limit + 1))).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("publish it with a larger piece size"));
}

TEST_F(CatalogTest, RegisteringAgainIsIdempotentAndReplacesOriginUrls) {
  const std::string manifest = SignedManifest(ReleaseSpec());
  ASSERT_TRUE(RegisterBytes(manifest).ok());
  clock_.Advance(absl::Minutes(5));
  absl::StatusOr<v1::RegisterReleaseResponse> again =
      RegisterBytes(manifest, {"http://a.example/x", "https://b.example/y"});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created());
  absl::StatusOr<v1::ReleaseInfo> info = Get(again->release_id());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->origin_urls(),
              ElementsAre("http://a.example/x", "https://b.example/y"));
  EXPECT_EQ(info->registered_ms(), absl::ToUnixMillis(testing::kStart));
}

TEST_F(CatalogTest, RefusesOlderSigningOfARegisteredVersion) {
  Register(Release("game-server", "1.0", 5));
  absl::Status status =
      RegisterBytes(SignedManifest(Release("game-server", "1.0", 4))).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("sequence 4 is not newer"));
}

TEST_F(CatalogTest, RefusesAnotherSigningWithTheSameSequence) {
  Register(Release("game-server", "1.0", 5));
  ReleaseSpec other = Release("game-server", "1.0", 5);
  other.pieces = 21;  // a different body, hence a different release
  EXPECT_EQ(RegisterBytes(SignedManifest(other)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CatalogTest, NewerSigningReplacesTheVersionByName) {
  const std::string old_id = Register(Release("game-server", "1.0", 5));
  const std::string new_id = Register(Release("game-server", "1.0", 6));
  ASSERT_NE(old_id, new_id);
  absl::StatusOr<v1::ReleaseInfo> info = Get("game-server@1.0");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->release_id(), new_id);
  EXPECT_TRUE(Get(old_id).ok());  // still served by id
}

TEST_F(CatalogTest, RefusesOriginUrlsThatAreNotHttp) {
  const std::string manifest = SignedManifest(ReleaseSpec());
  EXPECT_EQ(RegisterBytes(manifest, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RegisterBytes(manifest, {"ftp://origin.example/"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RegisterBytes(manifest, {"https://"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CatalogTest, RefusesOriginUrlWithCredentials) {
  absl::Status status = RegisterBytes(SignedManifest(ReleaseSpec()),
                                      {"https://user:secret@origin.example/"})
                            .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("credentials"));
}

TEST_F(CatalogTest, UnknownReleaseIsNotFound) {
  EXPECT_EQ(Get("game-server@9.9").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Get(std::string(64, 'a')).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CatalogTest, MalformedReleaseIsInvalid) {
  EXPECT_EQ(Get("not a release").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get("game-server@").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CatalogTest, ListsReleasesByNameWithoutManifests) {
  Register(Release("game-server", "2.0"));
  Register(Release("game-server", "1.0"));
  Register(Release("tools", "1.0"));
  v1::ListReleasesRequest request;
  request.set_name("game-server");
  absl::StatusOr<v1::ListReleasesResponse> response =
      tracker().ListReleases(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->releases_size(), 2);
  EXPECT_EQ(response->releases(0).version(), "1.0");
  EXPECT_EQ(response->releases(1).version(), "2.0");
  EXPECT_TRUE(response->releases(0).manifest().empty());
  EXPECT_EQ(response->releases(0).total_pieces(), 20u);
  EXPECT_EQ(tracker().ListReleases({})->releases_size(), 3);
}

class RolloutTest : public CatalogTest {
 protected:
  absl::StatusOr<v1::Rollout> Set(const std::string& channel,
                                  const std::string& release, uint32_t percent,
                                  bool paused = false) {
    v1::SetRolloutRequest request;
    request.set_channel(channel);
    request.set_release(release);
    request.set_percent(percent);
    request.set_paused(paused);
    return tracker().SetRollout(request);
  }
};

TEST_F(RolloutTest, PointsChannelAtRelease) {
  const std::string id = Register();
  absl::StatusOr<v1::Rollout> rollout =
      Set("game-server/stable", "game-server@1.0", 10);
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->channel(), "game-server/stable");
  EXPECT_EQ(rollout->release_id(), id);
  EXPECT_EQ(rollout->percent(), 10u);
  EXPECT_FALSE(rollout->paused());
  EXPECT_EQ(rollout->generation(), 1u);
  EXPECT_EQ(rollout->updated_ms(), absl::ToUnixMillis(testing::kStart));
  v1::GetRolloutRequest get;
  get.set_channel("game-server/stable");
  absl::StatusOr<v1::Rollout> read = tracker().GetRollout(get);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->SerializeAsString(), rollout->SerializeAsString());
}

TEST_F(RolloutTest, EveryChangeIncrementsTheGeneration) {
  const std::string id = Register();
  ASSERT_TRUE(Set("game-server/stable", id, 10).ok());
  ASSERT_TRUE(Set("game-server/stable", id, 50).ok());
  absl::StatusOr<v1::Rollout> rollout = Set("game-server/stable", id, 100);
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->generation(), 3u);
}

TEST_F(RolloutTest, EmptyReleaseChangesOnlyPercentAndPaused) {
  const std::string id = Register();
  ASSERT_TRUE(Set("game-server/stable", id, 10).ok());
  absl::StatusOr<v1::Rollout> rollout =
      Set("game-server/stable", "", 50, /*paused=*/true);
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->release_id(), id);
  EXPECT_EQ(rollout->percent(), 50u);
  EXPECT_TRUE(rollout->paused());
}

TEST_F(RolloutTest, PausingWorksAfterTheReleaseExpired) {
  Register();
  ASSERT_TRUE(Set("game-server/stable", "game-server@1.0", 10).ok());
  clock_.Advance(kValidFor);
  EXPECT_TRUE(Set("game-server/stable", "", 10, /*paused=*/true).ok());
}

TEST_F(RolloutTest, KeepPercentChangesOnlyPaused) {
  const std::string id = Register();
  ASSERT_TRUE(Set("game-server/stable", id, 10).ok());
  v1::SetRolloutRequest pause;
  pause.set_channel("game-server/stable");
  pause.set_keep_percent(true);
  pause.set_percent(0);  // ignored
  pause.set_paused(true);
  absl::StatusOr<v1::Rollout> paused = tracker().SetRollout(pause);
  ASSERT_TRUE(paused.ok()) << paused.status();
  EXPECT_EQ(paused->release_id(), id);
  EXPECT_EQ(paused->percent(), 10u);
  EXPECT_TRUE(paused->paused());
  EXPECT_EQ(paused->generation(), 2u);
  pause.set_paused(false);
  absl::StatusOr<v1::Rollout> resumed = tracker().SetRollout(pause);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->percent(), 10u);
  EXPECT_FALSE(resumed->paused());
}

TEST_F(RolloutTest, KeepPercentWithReleaseSwitchesOnlyTheRelease) {
  const std::string first = Register();
  ASSERT_TRUE(Set("game-server/stable", first, 30).ok());
  const std::string second = Register(Release("game-server", "2.0"));
  v1::SetRolloutRequest request;
  request.set_channel("game-server/stable");
  request.set_release("game-server@2.0");
  request.set_keep_percent(true);
  absl::StatusOr<v1::Rollout> rollout = tracker().SetRollout(request);
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->release_id(), second);
  EXPECT_EQ(rollout->percent(), 30u);
}

TEST_F(RolloutTest, KeepPercentOnNewChannelIsNotFound) {
  Register();
  v1::SetRolloutRequest request;
  request.set_channel("game-server/stable");
  request.set_release("game-server@1.0");
  request.set_keep_percent(true);
  absl::Status status = tracker().SetRollout(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("channel game-server/stable has no release yet"));
}

TEST_F(RolloutTest, EmptyReleaseOnNewChannelIsNotFound) {
  EXPECT_EQ(Set("game-server/stable", "", 10).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RolloutTest, RefusesReleaseOfAnotherName) {
  Register(Release("other", "1.0"));
  absl::Status status = Set("game-server/stable", "other@1.0", 10).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(status.message()),
      HasSubstr("channel game-server/stable cannot point at other@1.0"));
}

TEST_F(RolloutTest, UnknownReleaseIsNotFound) {
  EXPECT_EQ(Set("game-server/stable", "game-server@1.0", 10).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RolloutTest, RefusesExpiredRelease) {
  Register();
  clock_.Advance(kValidFor);
  absl::Status status =
      Set("game-server/stable", "game-server@1.0", 10).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("expired"));
}

TEST_F(RolloutTest, RefusesPercentAboveHundred) {
  Register();
  EXPECT_EQ(Set("game-server/stable", "game-server@1.0", 101).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RolloutTest, RefusesMalformedChannel) {
  Register();
  EXPECT_EQ(Set("stable", "game-server@1.0", 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Set("game-server/", "game-server@1.0", 10).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RolloutTest, UnknownChannelIsNotFound) {
  v1::GetRolloutRequest request;
  request.set_channel("game-server/stable");
  EXPECT_EQ(tracker().GetRollout(request).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace shoal::tracker
