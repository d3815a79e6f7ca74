// The gRPC data plane end to end over loopback: GrpcTransport sessions
// against PeerService on a FakePieceSource. The client's defences against
// a lying peer are in lying_peer_test.cc.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "agent/data_plane_test_util.h"
#include "agent/fake_piece_source.h"
#include "agent/grpc_transport.h"
#include "agent/peer_service.h"
#include "common/grpc_security.h"
#include "common/testing/temp_dir.h"
#include "common/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;

constexpr char kRelease[] = "release-1";

class DataPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override { source_.AddRelease(kRelease, 16); }

  void TearDown() override {
    if (service_ != nullptr) service_->Shutdown();
    if (running_.server != nullptr) running_.server->Shutdown();
  }

  void StartServer(PeerServiceOptions options = {},
                   const GrpcSecurity& security = InsecureSecurity()) {
    service_ = std::make_unique<PeerService>(source_, options);
    running_ = ServeOnLoopback(*service_, security);
  }

  std::unique_ptr<PeerSession> Connect(RecordingListener& listener,
                                       const std::string& release = kRelease) {
    v1::PeerAddress remote = TestPeer("server");
    remote.set_address(running_.address);
    return transport_.Connect(remote, release, TestPeer("client"), listener);
  }

  absl::StatusOr<ReceivedPiece> Fetch(PeerSession& session, uint32_t piece,
                                      uint64_t expected_length,
                                      absl::Duration timeout = kTestTimeout) {
    FetchResult result;
    session.FetchPiece(ReleasePieceIndex(piece), expected_length, timeout,
                       result.Callback());
    return result.Wait();
  }

  FakePieceSource source_;
  std::unique_ptr<PeerService> service_;
  RunningServer running_;
  GrpcTransport transport_{InsecureSecurity()};
};

TEST_F(DataPlaneTest, FetchReturnsExactBytesAndProofForSeveralSizes) {
  const std::vector<size_t> sizes = {1000, 16 << 10, 1 << 20, (1 << 20) + 1,
                                     4 << 20};
  for (size_t i = 0; i < sizes.size(); ++i) {
    source_.AddPiece(kRelease, ReleasePieceIndex(i), TestBytes(sizes[i], i),
                     TestProof(i + 1, i));
  }
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener);
  for (size_t i = 0; i < sizes.size(); ++i) {
    absl::StatusOr<ReceivedPiece> piece = Fetch(*session, i, sizes[i]);
    ASSERT_TRUE(piece.ok()) << sizes[i] << ": " << piece.status();
    EXPECT_TRUE(piece->data.view() == TestBytes(sizes[i], i)) << sizes[i];
    EXPECT_EQ(piece->proof, TestProof(i + 1, i)) << sizes[i];
  }
}

TEST_F(DataPlaneTest, FetchWorksOverMutualTls) {
  const std::string dir = MakeTestDir("data_plane_tls");
  TestPki pki = *MakeTestPki(dir);
  GrpcSecurity server =
      *GrpcSecurity::Create(*IssueTestCert(pki, "seed", {}, {"127.0.0.1"}));
  GrpcSecurity client =
      *GrpcSecurity::Create(*IssueTestCert(pki, "leech", {}, {"127.0.0.1"}));
  source_.AddPiece(kRelease, ReleasePieceIndex(3), TestBytes(3 << 20, 3),
                   TestProof(4, 3));
  StartServer({}, server);
  GrpcTransport tls(client);
  RecordingListener listener;
  v1::PeerAddress remote = TestPeer("server");
  remote.set_address(running_.address);
  auto session = tls.Connect(remote, kRelease, TestPeer("client"), listener);
  absl::StatusOr<ReceivedPiece> piece = Fetch(*session, 3, 3 << 20);
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_TRUE(piece->data.view() == TestBytes(3 << 20, 3));
  EXPECT_TRUE(listener.WaitFor("bitfield"));
}

TEST_F(DataPlaneTest, FetchOfUnknownReleaseIsNotFound) {
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener, "no-such-release");
  EXPECT_EQ(Fetch(*session, 0, 100).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(DataPlaneTest, FetchOfPieceNotHeldIsNotFound) {
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener);
  EXPECT_EQ(Fetch(*session, 5, 100).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(DataPlaneTest, WatchSendsBitfieldFirst) {
  source_.AddPiece(kRelease, ReleasePieceIndex(0), "a", {});
  source_.AddPiece(kRelease, ReleasePieceIndex(9), "b", {});
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener);
  ASSERT_TRUE(listener.WaitFor("bitfield"));
  EXPECT_EQ(listener.events().front(), "bitfield 8040");
}

TEST_F(DataPlaneTest, WatchSendsHavesAsTheSourceVerifiesPieces) {
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener);
  ASSERT_TRUE(listener.WaitFor("bitfield"));
  for (uint32_t p : {4, 7, 2}) {
    source_.AddPiece(kRelease, ReleasePieceIndex(p), "x", {});
  }
  ASSERT_TRUE(listener.WaitFor("have", 3));
  EXPECT_THAT(listener.events(),
              ElementsAre("bitfield 0000", "have 4", "have 7", "have 2"));
}

TEST_F(DataPlaneTest, WatchSendsPeerListWithBitfieldAndRecordsAsker) {
  source_.AddMember(kRelease, TestPeer("far", "dc2"));
  source_.AddMember(kRelease, TestPeer("near", "dc1"));
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener);
  ASSERT_TRUE(listener.WaitFor("peers"));
  EXPECT_THAT(listener.events(),
              ElementsAre("bitfield 0000", "peers near,far"));
  std::vector<std::string> members;
  for (const auto& m : source_.Members(kRelease))
    members.push_back(m.peer_id());
  EXPECT_THAT(members, Contains("client"));
}

TEST_F(DataPlaneTest, WatchRepeatsPeerListEveryInterval) {
  source_.AddMember(kRelease, TestPeer("other"));
  StartServer({.pex_interval = absl::Milliseconds(20)});
  RecordingListener listener;
  auto session = Connect(listener);
  EXPECT_TRUE(listener.WaitFor("peers other", 3));
}

TEST_F(DataPlaneTest, WatchOfUnknownReleaseClosesWithNotFound) {
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener, "no-such-release");
  ASSERT_TRUE(listener.WaitFor("closed"));
  EXPECT_THAT(listener.events(), ElementsAre("closed NOT_FOUND"));
}

TEST_F(DataPlaneTest, FetchBeyondUploadSlotsIsResourceExhausted) {
  source_.AddPiece(kRelease, ReleasePieceIndex(0), TestBytes(100, 0), {});
  HoldingPacer pacer;
  StartServer({.max_uploads = 1, .pacer = &pacer});
  RecordingListener listener;
  auto session = Connect(listener);
  FetchResult first;
  session->FetchPiece(ReleasePieceIndex(0), 100, kTestTimeout,
                      first.Callback());
  ASSERT_TRUE(pacer.WaitForRequests(1));  // The first holds the only slot.
  EXPECT_EQ(Fetch(*session, 0, 100).status().code(),
            absl::StatusCode::kResourceExhausted);
  pacer.GrantWaiting();
  EXPECT_TRUE(first.Wait().ok());
}

TEST_F(DataPlaneTest, UploadAsksPacerBeforeEveryChunk) {
  source_.AddPiece(kRelease, ReleasePieceIndex(0), TestBytes(2500, 0), {});
  HoldingPacer pacer;
  StartServer({.chunk_bytes = 1000, .pacer = &pacer});
  RecordingListener listener;
  auto session = Connect(listener);
  FetchResult result;
  session->FetchPiece(ReleasePieceIndex(0), 2500, kTestTimeout,
                      result.Callback());
  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(pacer.WaitForRequests(n));
    pacer.GrantWaiting();
  }
  absl::StatusOr<ReceivedPiece> piece = result.Wait();
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_TRUE(piece->data.view() == TestBytes(2500, 0));
  EXPECT_THAT(pacer.requests(), ElementsAre(1000, 1000, 500));
}

TEST_F(DataPlaneTest, ServiceShutdownClosesSessionsWithUnavailable) {
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener);
  ASSERT_TRUE(listener.WaitFor("bitfield"));
  service_->Shutdown();
  running_.server->Shutdown();
  ASSERT_TRUE(listener.WaitFor("closed"));
  EXPECT_EQ(listener.events().back(), "closed UNAVAILABLE");
}

TEST_F(DataPlaneTest, ServerShutdownAloneClosesSessions) {
  StartServer();
  RecordingListener listener;
  auto session = Connect(listener);
  ASSERT_TRUE(listener.WaitFor("bitfield"));
  running_.server->Shutdown(std::chrono::system_clock::now());
  EXPECT_TRUE(listener.WaitFor("closed"));
}

TEST_F(DataPlaneTest, UndialableRemoteClosesSessionAndFailsFetches) {
  RecordingListener listener;
  v1::PeerAddress remote = TestPeer("remote");
  remote.set_address("192.0.2.1:7000");  // Not loopback, and we are insecure.
  auto session = transport_.Connect(remote, kRelease, TestPeer("me"), listener);
  ASSERT_TRUE(listener.WaitFor("closed"));
  EXPECT_THAT(listener.events(), ElementsAre("closed FAILED_PRECONDITION"));
  EXPECT_EQ(Fetch(*session, 0, 10).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(DataPlaneTest, DestroyingSessionsWithFetchesInFlightIsSafe) {
  for (uint32_t p = 0; p < 4; ++p) {
    source_.AddPiece(kRelease, ReleasePieceIndex(p), TestBytes(4 << 20, p), {});
  }
  StartServer();
  // Outlives every session: counts callbacks that ran after the destructor.
  std::atomic<int> late{0};
  for (int round = 0; round < 40; ++round) {
    auto destroyed = std::make_shared<std::atomic<bool>>(false);
    auto one_done = std::make_shared<absl::Notification>();
    auto first = std::make_shared<std::atomic<bool>>(true);
    auto listener = std::make_unique<RecordingListener>();
    auto session = Connect(*listener);
    for (uint32_t i = 0; i < 8; ++i) {
      session->FetchPiece(ReleasePieceIndex(i % 4), 4 << 20, kTestTimeout,
                          [&late, destroyed, one_done, first](auto) {
                            if (destroyed->load()) ++late;
                            if (first->exchange(false)) one_done->Notify();
                          });
    }
    if (round % 2 == 1) one_done->WaitForNotificationWithTimeout(kTestTimeout);
    session.reset();
    destroyed->store(true);
    listener.reset();  // A late listener call would touch freed memory.
  }
  // A fresh fetch round trip, after which stragglers would have shown.
  RecordingListener listener;
  auto session = Connect(listener);
  EXPECT_TRUE(Fetch(*session, 0, 4 << 20).ok());
  EXPECT_EQ(late.load(), 0);
}

TEST_F(DataPlaneTest, DestroyingSessionInsideItsOwnCallbackIsSafe) {
  source_.AddPiece(kRelease, ReleasePieceIndex(0), TestBytes(1 << 20, 0), {});
  StartServer();
  RecordingListener listener;
  std::unique_ptr<PeerSession> session = Connect(listener);
  absl::Notification issued, destroyed;
  std::atomic<bool> claimed{false};
  for (int i = 0; i < 4; ++i) {
    session->FetchPiece(ReleasePieceIndex(0), 1 << 20, kTestTimeout, [&](auto) {
      issued.WaitForNotification();
      // Another callback may be running at the same
      // time; the destructor waits for it, so it must
      // not wait for this one.
      if (claimed.exchange(true)) return;
      session.reset();
      destroyed.Notify();
    });
  }
  issued.Notify();
  EXPECT_TRUE(destroyed.WaitForNotificationWithTimeout(kTestTimeout));
}

}  // namespace
}  // namespace shoal::agent
