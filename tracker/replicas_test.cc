// Two tracker replicas of one datacenter sharing a real Redis: one is shut
// down mid-rollout and agents carry on with the other, which sees everything
// the first was told.

#include <stdlib.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "shoal/v1/tracker.grpc.pb.h"
#include "tracker/server.h"
#include "tracker/testing/redis_server.h"

namespace shoal::tracker {
namespace {

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = MakeTestDir("replicas");
    auto redis = testing::RedisServer::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    key_.emplace(*PrivateKey::Generate());
    ASSERT_TRUE(WritePublicKeyFile(tmpl + "/publisher.pub", key_->public_key()).ok());
    TrackerConfig config;
    config.trust_path = tmpl + "/publisher.pub";
    config.store = redis_->url();
    config.tls.insecure = true;
    config.options.datacenter = "dc1";
    config.watch_poll = absl::Milliseconds(20);
    for (auto* replica : {&a_, &b_}) {
      auto server = TrackerServer::Start(config, clock_);
      ASSERT_TRUE(server.ok()) << server.status();
      *replica = *std::move(server);
    }
  }

  std::unique_ptr<v1::Tracker::Stub> Stub(const TrackerServer& server) {
    auto security = GrpcSecurity::Create(TlsFlags{"", "", "", true});
    return v1::Tracker::NewStub(*security->MakeChannel(server.grpc_address()));
  }

  std::string Register(v1::Tracker::Stub& stub) {
    v1::ManifestBody body;
    body.set_format(kManifestFormat);
    body.set_name("game-server");
    body.set_version("2.0");
    body.set_sequence(1);
    body.set_created_unix_ms(absl::ToUnixMillis(clock_.Now()));
    body.set_expires_unix_ms(absl::ToUnixMillis(clock_.Now() + absl::Hours(1)));
    body.set_piece_size(1 << 20);
    v1::FileEntry* file = body.add_files();
    file->set_path("data");
    file->set_size(3 << 20);
    file->set_mode(0644);
    file->set_pieces_root(std::string(32, 'x'));
    v1::RegisterReleaseRequest request;
    request.set_manifest(SignManifest(body, {*key_})->SerializeAsString());
    request.add_origin_urls("http://127.0.0.1:1/");
    grpc::ClientContext ctx;
    v1::RegisterReleaseResponse response;
    grpc::Status s = stub.RegisterRelease(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.release_id();
  }

  grpc::Status Announce(v1::Tracker::Stub& stub, const std::string& peer,
                        const std::string& release_id, char bits) {
    v1::AnnounceRequest request;
    request.set_peer_id(peer);
    request.set_address("127.0.0.1:9100");
    request.set_datacenter("dc1");
    request.set_rack("r1");
    v1::ReleaseAnnounce* r = request.add_releases();
    r->set_release_id(release_id);
    r->set_state(v1::PEER_STATE_DOWNLOADING);
    r->set_bitfield(std::string(1, bits));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::AnnounceResponse response;
    return stub.Announce(&ctx, request, &response);
  }

  RealClock clock_;
  std::unique_ptr<testing::RedisServer> redis_;
  std::optional<PrivateKey> key_;
  std::unique_ptr<TrackerServer> a_, b_;
};

constexpr char kPeer1[] = "11111111111111111111111111111111";
constexpr char kPeer2[] = "22222222222222222222222222222222";

TEST_F(ReplicasTest, SurvivingReplicaKeepsServingWhatTheOtherWasTold) {
  auto to_a = Stub(*a_);
  auto to_b = Stub(*b_);
  std::string release_id = Register(*to_a);
  ASSERT_TRUE(Announce(*to_a, kPeer1, release_id, '\xe0').ok());  // holds all 3 pieces
  ASSERT_TRUE(Announce(*to_b, kPeer2, release_id, '\0').ok());

  a_->Shutdown();  // replica A goes away mid-rollout
  EXPECT_FALSE(Announce(*to_a, kPeer1, release_id, '\xe0').ok());
  // Agents fail over to B, which knows the release and both peers.
  ASSERT_TRUE(Announce(*to_b, kPeer1, release_id, '\xe0').ok());
  grpc::ClientContext ctx;
  v1::GetPeersRequest request;
  request.set_peer_id(kPeer2);
  request.set_release_id(release_id);
  v1::GetPeersResponse peers;
  ASSERT_TRUE(to_b->GetPeers(&ctx, request, &peers).ok());
  ASSERT_EQ(peers.peers_size(), 1);
  EXPECT_EQ(peers.peers(0).peer_id(), kPeer1);
  EXPECT_EQ(peers.peers(0).pieces_have(), 3u);

  // Peer 1 holds every piece, so B sends peer 2 to peers, not the origin.
  grpc::ClientContext lease_ctx;
  v1::OriginLeaseRequest lease;
  lease.set_peer_id(kPeer2);
  lease.set_release_id(release_id);
  lease.add_pieces(0);
  v1::OriginLeaseResponse answer;
  ASSERT_TRUE(to_b->RequestOriginLease(&lease_ctx, lease, &answer).ok());
  EXPECT_EQ(answer.granted_size(), 0);
  ASSERT_EQ(answer.held_by_peers_size(), 1);
}

TEST_F(ReplicasTest, LeaseGrantedByOneReplicaIsRespectedByTheOther) {
  auto to_a = Stub(*a_);
  auto to_b = Stub(*b_);
  std::string release_id = Register(*to_a);
  for (auto* stub : {to_a.get(), to_b.get()}) {
    grpc::ClientContext ctx;
    v1::OriginLeaseRequest lease;
    lease.set_peer_id(stub == to_a.get() ? kPeer1 : kPeer2);
    lease.set_release_id(release_id);
    lease.add_pieces(2);
    v1::OriginLeaseResponse answer;
    ASSERT_TRUE(stub->RequestOriginLease(&ctx, lease, &answer).ok());
    if (stub == to_a.get()) {
      EXPECT_EQ(answer.granted_size(), 1);
    } else {
      EXPECT_EQ(answer.granted_size(), 0);
      EXPECT_EQ(answer.leased_to_others_size(), 1);
    }
  }
}

}  // namespace
}  // namespace shoal::tracker
