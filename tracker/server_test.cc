// The tracker over real gRPC on loopback, with mutual TLS from a test fleet CA.

#include "tracker/server.h"

#include <stdlib.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "common/testing/test_pki.h"
#include "common/trust.h"
#include "common/testing/http_get.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "shoal/v1/tracker.grpc.pb.h"

namespace shoal::tracker {
namespace {

class TrackerServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTestDir("tracker_server");
    ASSERT_TRUE(MakeDirs(dir_ + "/pki").ok());
    ASSERT_TRUE(MakeDirs(dir_ + "/other-pki").ok());
    pki_ = *MakeTestPki(dir_ + "/pki");
    server_tls_ = *IssueTestCert(pki_, "tracker", {"localhost"}, {"127.0.0.1"});
    agent_tls_ = *IssueTestCert(pki_, "agent-1", {"agent-1.fleet"}, {});
    admin_tls_ = *IssueTestCert(pki_, "publisher", {"publisher.fleet"}, {});
    key_.emplace(*PrivateKey::Generate());
    ASSERT_TRUE(WritePublicKeyFile(dir_ + "/publisher.pub", key_->public_key()).ok());
    config_.trust_path = dir_ + "/publisher.pub";
    config_.tls = server_tls_;
    config_.metrics_listen = "127.0.0.1:0";
    config_.admin_identities = {"publisher.fleet"};
    config_.options.datacenter = "dc1";
    config_.watch_poll = absl::Milliseconds(20);
  }

  void StartServer() {
    auto server = TrackerServer::Start(config_, clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::unique_ptr<v1::Tracker::Stub> Stub(const TlsFlags& tls) {
    auto security = GrpcSecurity::Create(tls);
    EXPECT_TRUE(security.ok()) << security.status();
    auto channel = security->MakeChannel(server_->grpc_address());
    EXPECT_TRUE(channel.ok()) << channel.status();
    return v1::Tracker::NewStub(*channel);
  }

  std::string SignedManifest(const std::string& version) {
    v1::ManifestBody body;
    body.set_format(kManifestFormat);
    body.set_name("game-server");
    body.set_version(version);
    body.set_sequence(1);
    body.set_created_unix_ms(absl::ToUnixMillis(clock_.Now()));
    body.set_expires_unix_ms(absl::ToUnixMillis(clock_.Now() + absl::Hours(24)));
    body.set_piece_size(1 << 20);
    v1::FileEntry* file = body.add_files();
    file->set_path("bin/server");
    file->set_size(5 << 20);
    file->set_mode(0755);
    file->set_pieces_root(std::string(32, 'r'));
    auto signed_manifest = SignManifest(body, {*key_});
    EXPECT_TRUE(signed_manifest.ok()) << signed_manifest.status();
    return signed_manifest->SerializeAsString();
  }

  grpc::Status Register(v1::Tracker::Stub& stub, const std::string& manifest,
                        v1::RegisterReleaseResponse* response) {
    v1::RegisterReleaseRequest request;
    request.set_manifest(manifest);
    request.add_origin_urls("http://127.0.0.1:1/origin");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub.RegisterRelease(&ctx, request, response);
  }

  RealClock clock_;
  std::string dir_;
  TestPki pki_;
  TlsFlags server_tls_, agent_tls_, admin_tls_;
  std::optional<PrivateKey> key_;
  TrackerConfig config_;
  std::unique_ptr<TrackerServer> server_;
};

v1::AnnounceRequest Announce(const std::string& peer_id, const std::string& address,
                             const std::string& release_id) {
  v1::AnnounceRequest request;
  request.set_peer_id(peer_id);
  request.set_address(address);
  request.set_datacenter("dc1");
  request.set_rack("r1");
  v1::ReleaseAnnounce* release = request.add_releases();
  release->set_release_id(release_id);
  release->set_state(v1::PEER_STATE_DOWNLOADING);
  release->set_bitfield(std::string(1, '\0'));  // 5 pieces, none held yet
  return request;
}

TEST_F(TrackerServerTest, AgentsAnnounceAndFindEachOtherOverMutualTls) {
  StartServer();
  auto admin = Stub(admin_tls_);
  v1::RegisterReleaseResponse registered;
  ASSERT_TRUE(Register(*admin, SignedManifest("1.0"), &registered).ok());
  auto agent = Stub(agent_tls_);
  for (const char* id : {"00000000000000000000000000000001", "00000000000000000000000000000002"}) {
    grpc::ClientContext ctx;
    v1::AnnounceResponse response;
    grpc::Status s = agent->Announce(&ctx, Announce(id, "127.0.0.1:9000", registered.release_id()),
                                     &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_GT(response.next_announce_ms(), 0);
  }
  grpc::ClientContext ctx;
  v1::GetPeersRequest request;
  request.set_peer_id("00000000000000000000000000000001");
  request.set_release_id(registered.release_id());
  v1::GetPeersResponse peers;
  ASSERT_TRUE(agent->GetPeers(&ctx, request, &peers).ok());
  ASSERT_EQ(peers.peers_size(), 1);
  EXPECT_EQ(peers.peers(0).peer_id(), "00000000000000000000000000000002");
}

TEST_F(TrackerServerTest, OnlyAdminIdentitiesMayRegister) {
  StartServer();
  v1::RegisterReleaseResponse response;
  grpc::Status denied = Register(*Stub(agent_tls_), SignedManifest("1.0"), &response);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(denied.error_message().find("agent-1.fleet"), std::string::npos)
      << denied.error_message();
  grpc::Status ok = Register(*Stub(admin_tls_), SignedManifest("1.0"), &response);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_TRUE(response.created());
}

TEST_F(TrackerServerTest, RegisterRefusesManifestFromUntrustedKey) {
  StartServer();
  key_.emplace(*PrivateKey::Generate());  // not the trusted key
  v1::RegisterReleaseResponse response;
  grpc::Status s = Register(*Stub(admin_tls_), SignedManifest("1.0"), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("untrusted key"), std::string::npos) << s.error_message();
}

TEST_F(TrackerServerTest, ClientFromAnotherCaIsRefused) {
  StartServer();
  TestPki other = *MakeTestPki(dir_ + "/other-pki", "other-ca");
  TlsFlags stranger = *IssueTestCert(other, "stranger", {"stranger"}, {});
  // The stranger trusts the server's CA too, so only the server can refuse.
  stranger.ca = dir_ + "/both-cas.pem";
  ASSERT_TRUE(WriteCaBundle({pki_, other}, stranger.ca).ok());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ListReleasesResponse response;
  grpc::Status s = Stub(stranger)->ListReleases(&ctx, v1::ListReleasesRequest(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(TrackerServerTest, InsecureIsRefusedOnNonLoopbackAddress) {
  config_.tls = TlsFlags{"", "", "", true};
  config_.listen = "0.0.0.0:0";
  auto server = TrackerServer::Start(config_, clock_);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition) << server.status();
}

TEST_F(TrackerServerTest, WatchChannelStreamsEveryRolloutChange) {
  StartServer();
  auto admin = Stub(admin_tls_);
  v1::RegisterReleaseResponse registered;
  ASSERT_TRUE(Register(*admin, SignedManifest("1.0"), &registered).ok());

  auto agent = Stub(agent_tls_);
  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::GetRolloutRequest watch_request;
  watch_request.set_channel("game-server/stable");
  auto reader = agent->WatchChannel(&watch_ctx, watch_request);

  for (uint32_t percent : {10u, 50u}) {
    grpc::ClientContext ctx;
    v1::SetRolloutRequest set;
    set.set_channel("game-server/stable");
    set.set_release("game-server@1.0");
    set.set_percent(percent);
    v1::Rollout stored;
    grpc::Status s = admin->SetRollout(&ctx, set, &stored);
    ASSERT_TRUE(s.ok()) << s.error_message();
    v1::Rollout pushed;
    ASSERT_TRUE(reader->Read(&pushed));
    EXPECT_EQ(pushed.percent(), percent);
    EXPECT_EQ(pushed.release_id(), registered.release_id());
    EXPECT_EQ(pushed.generation(), stored.generation());
  }
  watch_ctx.TryCancel();
  v1::Rollout ignored;
  while (reader->Read(&ignored)) {
  }
  reader->Finish();
}

TEST_F(TrackerServerTest, MetricsCountAnnouncesAndReadinessFollowsTheStore) {
  StartServer();
  auto agent = Stub(agent_tls_);
  grpc::ClientContext ctx;
  v1::AnnounceResponse response;
  ASSERT_TRUE(agent->Announce(&ctx, Announce("00000000000000000000000000000003",
                                             "127.0.0.1:9000", std::string(64, 'a')),
                              &response)
                  .ok());
  std::string metrics = HttpGet(absl::StrCat("http://", server_->metrics_address(), "/metrics"));
  EXPECT_NE(metrics.find("shoal_tracker_announces_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("shoal_tracker_rpc_duration_seconds_count{method=\"Announce\"} 1"),
            std::string::npos);
  EXPECT_EQ(HttpGet(absl::StrCat("http://", server_->metrics_address(), "/readyz")), "ready\n");
}

TEST_F(TrackerServerTest, ReadyJsonNamesTheBoundPorts) {
  StartServer();
  std::string json = server_->ReadyJson();
  EXPECT_NE(json.find(server_->grpc_address()), std::string::npos);
  EXPECT_EQ(server_->grpc_address().find(":0"), std::string::npos);
  EXPECT_NE(json.find(server_->metrics_address()), std::string::npos);
}

}  // namespace
}  // namespace shoal::tracker
