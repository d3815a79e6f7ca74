// The tracker client against two real tracker replicas of one datacenter,
// in-process on loopback.

#include "agent/tracker_client.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/ed25519.h"
#include "common/manifest.h"
#include "common/testing/temp_dir.h"
#include "glog/logging.h"
#include "common/testing/http_get.h"
#include "gtest/gtest.h"
#include "tracker/server.h"

namespace shoal::agent {
namespace {

constexpr char kPeer[] = "11111111111111111111111111111111";
constexpr char kChannel[] = "game-server/stable";

// Announce calls a tracker has counted, whatever their outcome.
int AnnouncesCounted(const tracker::TrackerServer& server) {
  const std::string text =
      HttpGet(absl::StrCat("http://", server.metrics_address(), "/metrics"));
  int count = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "shoal_tracker_rpcs_total{") &&
        absl::StrContains(line, "method=\"Announce\"")) {
      int value = 0;
      if (absl::SimpleAtoi(line.substr(line.rfind(' ') + 1), &value)) {
        count += value;
      }
    }
  }
  return count;
}

// A loopback listener that completes TCP handshakes (the kernel does) but
// never answers: a replica that hangs.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    CHECK_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    CHECK_EQ(listen(fd_, 16), 0);
    CHECK_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  }
  ~BlackHole() { close(fd_); }
  const std::string& address() const { return address_; }

 private:
  int fd_;
  std::string address_;
};

class TrackerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = MakeTestDir("tracker_client");
    key_.emplace(*PrivateKey::Generate());
    ASSERT_TRUE(
        WritePublicKeyFile(dir + "/publisher.pub", key_->public_key()).ok());
    tracker::TrackerConfig config;
    config.trust_path = dir + "/publisher.pub";
    config.metrics_listen = "127.0.0.1:0";
    config.tls.insecure = true;
    config.options.datacenter = "dc1";
    config.watch_poll = absl::Milliseconds(20);
    for (auto* replica : {&a_, &b_}) {
      auto server = tracker::TrackerServer::Start(config, clock_);
      ASSERT_TRUE(server.ok()) << server.status();
      *replica = *std::move(server);
      release_id_ = Register(**replica);
    }
  }

  std::unique_ptr<v1::Tracker::Stub> Stub(const tracker::TrackerServer& s) {
    return v1::Tracker::NewStub(*Security().MakeChannel(s.grpc_address()));
  }

  static GrpcSecurity Security() {
    return *GrpcSecurity::Create(TlsFlags{"", "", "", true});
  }

  std::unique_ptr<TrackerClient> Client(std::vector<std::string> addresses) {
    TrackerClientOptions options;
    options.addresses = std::move(addresses);
    options.call_timeout = absl::Milliseconds(500);
    auto client = TrackerClient::Create(Security(), options);
    CHECK(client.ok()) << client.status();
    return *std::move(client);
  }

  // The publisher registers with every replica.
  std::string Register(const tracker::TrackerServer& server) {
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
    grpc::Status s = Stub(server)->RegisterRelease(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.release_id();
  }

  void SetRollout(const tracker::TrackerServer& server) {
    v1::SetRolloutRequest request;
    request.set_channel(kChannel);
    request.set_release(release_id_);
    request.set_percent(10);
    grpc::ClientContext ctx;
    v1::Rollout response;
    grpc::Status s = Stub(server)->SetRollout(&ctx, request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  v1::AnnounceRequest AnnounceRequest(const std::string& peer_id = kPeer) {
    v1::AnnounceRequest request;
    request.set_peer_id(peer_id);
    request.set_address("127.0.0.1:9100");
    request.set_datacenter("dc1");
    request.set_rack("r1");
    v1::ReleaseAnnounce* r = request.add_releases();
    r->set_release_id(release_id_);
    r->set_state(v1::PEER_STATE_DOWNLOADING);
    r->set_bitfield(std::string(1, '\0'));
    return request;
  }

  RealClock clock_;
  std::optional<PrivateKey> key_;
  std::unique_ptr<tracker::TrackerServer> a_, b_;
  std::string release_id_;
};

TEST_F(TrackerClientTest, CallsKeepWorkingThroughTheOtherReplica) {
  auto client = Client({a_->grpc_address(), b_->grpc_address()});
  ASSERT_TRUE(client->Announce(AnnounceRequest()).ok());
  EXPECT_EQ(client->current_address(), a_->grpc_address());

  a_->Shutdown();
  absl::StatusOr<v1::AnnounceResponse> announced =
      client->Announce(AnnounceRequest());
  ASSERT_TRUE(announced.ok()) << announced.status();
  EXPECT_EQ(client->current_address(), b_->grpc_address());
  v1::GetPeersRequest peers;
  peers.set_peer_id(kPeer);
  peers.set_release_id(release_id_);
  EXPECT_TRUE(client->GetPeers(peers).ok());
  v1::OriginLeaseRequest lease;
  lease.set_peer_id(kPeer);
  lease.set_release_id(release_id_);
  lease.add_pieces(0);
  absl::StatusOr<v1::OriginLeaseResponse> granted =
      client->RequestOriginLease(lease);
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(granted->granted_size(), 1);
  absl::StatusOr<v1::ReleaseInfo> info = client->GetRelease("game-server@2.0");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->release_id(), release_id_);
}

TEST_F(TrackerClientTest, SkipsAReplicaThatDoesNotAnswerInTime) {
  BlackHole hung;
  auto client = Client({hung.address(), b_->grpc_address()});
  absl::StatusOr<v1::AnnounceResponse> announced =
      client->Announce(AnnounceRequest());
  ASSERT_TRUE(announced.ok()) << announced.status();
  EXPECT_EQ(client->current_address(), b_->grpc_address());
}

TEST_F(TrackerClientTest, InvalidArgumentIsNotRetriedOnTheOtherReplica) {
  auto client = Client({a_->grpc_address(), b_->grpc_address()});
  absl::StatusOr<v1::AnnounceResponse> announced =
      client->Announce(AnnounceRequest("not-a-peer-id"));
  EXPECT_EQ(announced.status().code(), absl::StatusCode::kInvalidArgument)
      << announced.status();
  EXPECT_TRUE(
      absl::StrContains(announced.status().message(), a_->grpc_address()))
      << announced.status();
  EXPECT_EQ(AnnouncesCounted(*a_), 1);
  EXPECT_EQ(AnnouncesCounted(*b_), 0);
}

TEST_F(TrackerClientTest, AllReplicasDownIsUnavailableNamingEach) {
  auto client = Client({a_->grpc_address(), b_->grpc_address()});
  a_->Shutdown();
  b_->Shutdown();
  absl::StatusOr<v1::AnnounceResponse> announced =
      client->Announce(AnnounceRequest());
  EXPECT_EQ(announced.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(
      absl::StrContains(announced.status().message(), a_->grpc_address()))
      << announced.status();
  EXPECT_TRUE(
      absl::StrContains(announced.status().message(), b_->grpc_address()))
      << announced.status();
}

TEST_F(TrackerClientTest, WatchChannelOpensOnAReachableReplica) {
  auto client = Client({a_->grpc_address(), b_->grpc_address()});
  a_->Shutdown();
  SetRollout(*b_);
  absl::StatusOr<std::unique_ptr<ChannelWatch>> watch =
      client->WatchChannel(kChannel);
  ASSERT_TRUE(watch.ok()) << watch.status();
  EXPECT_EQ((*watch)->address(), b_->grpc_address());
  absl::StatusOr<v1::Rollout> rollout = (*watch)->Next();
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->release_id(), release_id_);
  EXPECT_EQ(rollout->percent(), 10u);
}

TEST_F(TrackerClientTest, CancelledWatchEndsWithCancelled) {
  auto client = Client({a_->grpc_address()});
  absl::StatusOr<std::unique_ptr<ChannelWatch>> watch =
      client->WatchChannel(kChannel);  // no rollout yet: nothing to read
  ASSERT_TRUE(watch.ok()) << watch.status();
  (*watch)->Cancel();
  EXPECT_EQ((*watch)->Next().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ((*watch)->Next().status().code(), absl::StatusCode::kCancelled);
}

TEST_F(TrackerClientTest, WatchWithNoReplicaReachableIsUnavailable) {
  auto client = Client({a_->grpc_address(), b_->grpc_address()});
  a_->Shutdown();
  b_->Shutdown();
  absl::StatusOr<std::unique_ptr<ChannelWatch>> watch =
      client->WatchChannel(kChannel);
  EXPECT_EQ(watch.status().code(), absl::StatusCode::kUnavailable);
}

TEST(ParseTrackerAddressesTest, SplitsOnCommas) {
  absl::StatusOr<std::vector<std::string>> addresses =
      ParseTrackerAddresses("10.0.0.1:7000, 10.0.0.2:7000");
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  EXPECT_EQ(*addresses,
            (std::vector<std::string>{"10.0.0.1:7000", "10.0.0.2:7000"}));
}

TEST(ParseTrackerAddressesTest, RefusesEmptyEntries) {
  EXPECT_EQ(ParseTrackerAddresses("").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTrackerAddresses("a:1,,b:2").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal::agent
