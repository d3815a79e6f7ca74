// The channel follower against a real tracker (in-process, loopback) and a
// host that installs for real but downloads nothing.

#include "agent/channel_follower.h"

#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/install.h"
#include "common/clock.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "common/rollout.h"
#include "common/status_macros.h"
#include "common/testing/temp_dir.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "tracker/server.h"

namespace shoal::agent {
namespace {

constexpr char kChannel[] = "game-server/stable";

// A peer id whose bucket in kChannel is in [low, high).
std::string PeerInBucket(uint32_t low, uint32_t high) {
  for (int i = 0; i < 100000; ++i) {
    std::string id = absl::StrCat("peer", i);
    id.resize(32, '0');
    const uint32_t bucket = RolloutBucket(kChannel, id);
    if (bucket >= low && bucket < high) return id;
  }
  LOG(FATAL) << "no peer id in bucket [" << low << ", " << high << ")";
}

// Fetches nothing (every release is "complete" at once); installs the
// release's one small file for real, so that DIR/current and its marker are
// what the follower reads back.
class FakeHost final : public ChannelHost {
 public:
  explicit FakeHost(std::string store_dir) : store_dir_(std::move(store_dir)) {}

  void Add(const Manifest& manifest) {
    absl::MutexLock lock(&mu_);
    manifests_.emplace(manifest.release_id(), manifest);
  }
  void Refuse(const std::string& id, absl::Status status) {
    absl::MutexLock lock(&mu_);
    refusals_[id] = status;
  }
  int fetches(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return fetches_[id];
  }
  std::vector<std::string> retired() {
    absl::MutexLock lock(&mu_);
    return retired_;
  }

  absl::StatusOr<std::string> FetchForChannel(const std::string& id,
                                              const std::string& name) override {
    absl::MutexLock lock(&mu_);
    ++fetches_[id];
    EXPECT_EQ(name, "game-server");
    if (auto it = refusals_.find(id); it != refusals_.end()) return it->second;
    return id;
  }
  absl::StatusOr<bool> AwaitComplete(const std::string&, absl::Duration) override {
    return true;
  }
  absl::Status InstallForChannel(const std::string& id, const std::string& dir) override {
    std::optional<Manifest> manifest;
    {
      absl::MutexLock lock(&mu_);
      manifest = manifests_.at(id);
    }
    const std::string data = absl::StrCat(store_dir_, "/", id);
    RETURN_IF_ERROR(MakeDirs(data));
    RETURN_IF_ERROR(WriteFileAtomically(data + "/app", std::string(manifest->total_size(), 'a'),
                                        0644, false));
    InstallOptions options;
    options.durable = false;
    return Install(*manifest, data, dir, options).status();
  }
  void Retire(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    retired_.push_back(id);
  }

 private:
  const std::string store_dir_;
  absl::Mutex mu_;
  std::map<std::string, Manifest> manifests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> refusals_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> fetches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> retired_ ABSL_GUARDED_BY(mu_);
};

class ChannelFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTestDir("channel_follower");
    key_.emplace(*PrivateKey::Generate());
    ASSERT_TRUE(WritePublicKeyFile(dir_ + "/publisher.pub", key_->public_key()).ok());
    tracker::TrackerConfig config;
    config.trust_path = dir_ + "/publisher.pub";
    config.tls.insecure = true;
    config.options.datacenter = "dc1";
    config.watch_poll = absl::Milliseconds(20);
    auto server = tracker::TrackerServer::Start(config, clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    tracker_server_ = *std::move(server);
    TrackerClientOptions options;
    options.addresses = {tracker_server_->grpc_address()};
    auto client = TrackerClient::Create(Security(), options);
    ASSERT_TRUE(client.ok()) << client.status();
    tracker_ = *std::move(client);
    host_.emplace(dir_ + "/store");
    v1_ = Register("1.0");
    v2_ = Register("2.0");
  }

  static GrpcSecurity Security() { return *GrpcSecurity::Create(TlsFlags{"", "", "", true}); }

  std::string Register(const std::string& version) {
    v1::ManifestBody body;
    body.set_format(kManifestFormat);
    body.set_name("game-server");
    body.set_version(version);
    body.set_sequence(1);
    body.set_created_unix_ms(absl::ToUnixMillis(clock_.Now()));
    body.set_expires_unix_ms(absl::ToUnixMillis(clock_.Now() + absl::Hours(1)));
    body.set_piece_size(1 << 20);
    v1::FileEntry* file = body.add_files();
    file->set_path("app");
    file->set_size(1000 + version.size());
    file->set_mode(0755);
    file->set_pieces_root(std::string(32, 'x'));
    const std::string bytes = SignManifest(body, {*key_})->SerializeAsString();
    absl::StatusOr<Manifest> manifest = Manifest::ParseUnverified(bytes);
    CHECK(manifest.ok()) << manifest.status();
    host_->Add(*manifest);
    v1::RegisterReleaseRequest request;
    request.set_manifest(bytes);
    request.add_origin_urls("http://127.0.0.1:1/");
    grpc::ClientContext ctx;
    v1::RegisterReleaseResponse response;
    grpc::Status s = v1::Tracker::NewStub(*Security().MakeChannel(tracker_server_->grpc_address()))
                         ->RegisterRelease(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.release_id();
  }

  uint64_t SetRollout(const std::string& release, uint32_t percent, bool paused) {
    v1::SetRolloutRequest request;
    request.set_channel(kChannel);
    request.set_release(release);
    request.set_percent(percent);
    request.set_paused(paused);
    grpc::ClientContext ctx;
    v1::Rollout response;
    grpc::Status s = v1::Tracker::NewStub(*Security().MakeChannel(tracker_server_->grpc_address()))
                         ->SetRollout(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.generation();
  }

  std::unique_ptr<ChannelFollower> Follow(const std::string& peer, const std::string& name) {
    return std::make_unique<ChannelFollower>(ChannelSpec{kChannel, dir_ + "/" + name}, peer,
                                             *tracker_, *host_, absl::ZeroDuration());
  }

  // Waits (bounded) until `done` holds for the follower's status.
  template <typename Pred>
  static bool WaitFor(const ChannelFollower& f, Pred done) {
    for (int i = 0; i < 2000; ++i) {
      if (done(f.Status())) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    LOG(ERROR) << "status never matched: " << f.Status().DebugString();
    return false;
  }

  // The follower saw `generation` and went through with it: installed
  // `installed` (empty: nothing).
  static bool Settled(const ChannelFollower& f, uint64_t generation, const std::string& installed) {
    return WaitFor(f, [&](const v1::ChannelStatus& s) {
      return s.generation() == generation && s.installed_release_id() == installed;
    });
  }

  std::string Current(const std::string& name) {
    auto current = CurrentRelease(dir_ + "/" + name);
    return current.ok() && current->has_value() ? **current : "";
  }

  RealClock clock_;
  std::string dir_;
  std::optional<PrivateKey> key_;
  std::unique_ptr<tracker::TrackerServer> tracker_server_;
  std::unique_ptr<TrackerClient> tracker_;
  std::optional<FakeHost> host_;
  std::string v1_, v2_;
};

TEST_F(ChannelFollowerTest, InstallsOnlyInsideTheRolloutAndTheSetOnlyGrows) {
  auto early = Follow(PeerInBucket(0, 10), "early");
  auto late = Follow(PeerInBucket(60, 100), "late");
  uint64_t g = SetRollout(v1_, 10, false);
  ASSERT_TRUE(Settled(*early, g, v1_));
  EXPECT_EQ(Current("early"), "game-server@1.0");
  ASSERT_TRUE(WaitFor(*late, [&](const v1::ChannelStatus& s) {
    return s.generation() == g && !s.in_rollout();
  }));
  g = SetRollout(v1_, 50, false);
  ASSERT_TRUE(WaitFor(*late, [&](const v1::ChannelStatus& s) { return s.generation() == g; }));
  EXPECT_EQ(host_->fetches(v1_), 1) << "only the early agent fetched";
  EXPECT_EQ(Current("late"), "");
  g = SetRollout(v1_, 100, false);
  ASSERT_TRUE(Settled(*late, g, v1_));
  EXPECT_EQ(Current("late"), "game-server@1.0");
  EXPECT_EQ(Current("early"), "game-server@1.0");
  EXPECT_EQ(host_->fetches(v1_), 2);
}

TEST_F(ChannelFollowerTest, PauseStartsNothingNewResumeDoesAndRollbackWorks) {
  auto follower = Follow(PeerInBucket(0, 100), "app");
  uint64_t g = SetRollout(v1_, 100, false);
  ASSERT_TRUE(Settled(*follower, g, v1_));
  g = SetRollout(v2_, 100, true);
  ASSERT_TRUE(WaitFor(*follower, [&](const v1::ChannelStatus& s) {
    return s.generation() == g && s.paused();
  }));
  EXPECT_EQ(host_->fetches(v2_), 0);
  EXPECT_EQ(Current("app"), "game-server@1.0");
  g = SetRollout("", 100, false);  // resume, same release
  ASSERT_TRUE(Settled(*follower, g, v2_));
  EXPECT_EQ(Current("app"), "game-server@2.0");
  // The release the channel left is retired after the seed time (0 here).
  ASSERT_TRUE(WaitFor(*follower, [&](const v1::ChannelStatus&) {
    return host_->retired() == std::vector<std::string>{v1_};
  }));
  // Rollback: the channel points at the older release again.
  g = SetRollout(v1_, 100, false);
  ASSERT_TRUE(Settled(*follower, g, v1_));
  EXPECT_EQ(Current("app"), "game-server@1.0");
}

TEST_F(ChannelFollowerTest, RefusedReleaseIsReportedAndNotRetriedUntilTheChannelChanges) {
  auto follower = Follow(PeerInBucket(0, 100), "app");
  host_->Refuse(v2_, absl::UnauthenticatedError("manifest signed by an untrusted key 3f2a"));
  const uint64_t g = SetRollout(v2_, 100, false);
  ASSERT_TRUE(WaitFor(*follower, [&](const v1::ChannelStatus& s) {
    return s.generation() == g && absl::StrContains(s.error(), "untrusted key 3f2a");
  }));
  absl::SleepFor(absl::Seconds(1));  // long enough for a retry loop to show
  EXPECT_EQ(host_->fetches(v2_), 1);
  EXPECT_EQ(Current("app"), "");
}

TEST_F(ChannelFollowerTest, RestartedFollowerDoesNotInstallAgain) {
  const std::string peer = PeerInBucket(0, 100);
  uint64_t g = SetRollout(v1_, 100, false);
  {
    auto follower = Follow(peer, "app");
    ASSERT_TRUE(Settled(*follower, g, v1_));
  }
  auto again = Follow(peer, "app");
  EXPECT_EQ(again->Status().installed_release_id(), v1_);
  ASSERT_TRUE(Settled(*again, g, v1_));
  EXPECT_EQ(host_->fetches(v1_), 1);
}

TEST(ParseFollowFlagTest, AcceptsChannelsAndRefusesMistakes) {
  auto specs = ParseFollowFlag("app/stable=/srv/app,db/beta=/srv/db");
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[1].channel, "db/beta");
  EXPECT_EQ((*specs)[1].dir, "/srv/db");
  for (const char* bad : {"app/stable", "app=/srv", "app/stable=relative", "a/b=/x,a/b=/y"}) {
    EXPECT_EQ(ParseFollowFlag(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace shoal::agent
