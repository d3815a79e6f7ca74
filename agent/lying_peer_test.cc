// GrpcTransport against a peer that lies: a scripted Peer service that sends
// whatever chunks a test gives it, in the canonical protobuf encoding (where
// data precedes piece_length and proof), or stalls.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/data_plane_test_util.h"
#include "agent/grpc_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// The largest single operator-new allocation since the last reset: how a
// test sees that the client never allocates what a remote claims.
static std::atomic<size_t> largest_allocation{0};

void* operator new(size_t size) {
  size_t seen = largest_allocation.load(std::memory_order_relaxed);
  while (size > seen && !largest_allocation.compare_exchange_weak(seen, size)) {
  }
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) std::abort();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace shoal::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Writes `messages` one by one, then ends OK, or with `stall` waits for the
// client to give up. Deletes itself.
template <typename Message>
class Script final : public grpc::ServerWriteReactor<Message> {
 public:
  // `messages` must outlive the call.
  Script(const std::vector<Message>& messages, bool stall)
      : messages_(messages), stall_(stall) {
    absl::MutexLock lock(&mu_);
    Next();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) cancelled_ = true;
    Next();
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    Next();
  }
  void OnDone() override { delete this; }

 private:
  // Starts the next step unless one is in flight. gRPC never runs a reaction
  // inline, so calling it under the lock is safe.
  void Next() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (cancelled_ || (next_ == messages_.size() && !stall_)) {
      finished_ = true;
      this->Finish(cancelled_ ? grpc::Status::CANCELLED : grpc::Status::OK);
    } else if (next_ < messages_.size()) {
      writing_ = true;
      this->StartWrite(&messages_[next_++]);
    }
  }

  absl::Mutex mu_;
  const std::vector<Message>& messages_;
  const bool stall_;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// A Peer service that answers with what the test sets, and records the
// client connections the calls came on.
class ScriptedPeer final : public v1::Peer::CallbackService {
 public:
  std::vector<v1::PieceChunk> chunks;
  bool stall = false;
  std::vector<v1::Availability> availability;

  grpc::ServerWriteReactor<v1::PieceChunk>* FetchPiece(
      grpc::CallbackServerContext* context,
      const v1::FetchPieceRequest*) override {
    {
      absl::MutexLock lock(&mu_);
      callers_.insert(context->peer());
    }
    return new Script<v1::PieceChunk>(chunks, stall);
  }
  grpc::ServerWriteReactor<v1::Availability>* Watch(
      grpc::CallbackServerContext* context, const v1::WatchRequest*) override {
    {
      absl::MutexLock lock(&mu_);
      watch_callers_.insert(context->peer());
    }
    return new Script<v1::Availability>(availability, /*stall=*/true);
  }

  std::set<std::string> callers() {
    absl::MutexLock lock(&mu_);
    return callers_;
  }
  std::set<std::string> watch_callers() {
    absl::MutexLock lock(&mu_);
    return watch_callers_;
  }

 private:
  absl::Mutex mu_;
  std::set<std::string> callers_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> watch_callers_ ABSL_GUARDED_BY(mu_);
};

v1::PieceChunk Chunk(uint64_t offset, size_t size, uint64_t piece_length = 0,
                     int proof_length = 0, size_t proof_element_size = 32) {
  v1::PieceChunk chunk;
  chunk.set_offset(offset);
  chunk.set_data(TestBytes(size, 0));
  chunk.set_piece_length(piece_length);
  for (int i = 0; i < proof_length; ++i) {
    chunk.add_proof(std::string(proof_element_size, static_cast<char>(i)));
  }
  return chunk;
}

class LyingPeerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    session_.reset();  // Ends its Watch call, which the peer holds open.
    if (running_.server != nullptr) running_.server->Shutdown();
  }

  // Fetches piece 0 from the scripted peer, over one session per test.
  absl::StatusOr<ReceivedPiece> Fetch(uint64_t expected_length,
                                      absl::Duration timeout = kTestTimeout) {
    if (running_.server == nullptr) {
      running_ = ServeOnLoopback(peer_, InsecureSecurity());
    }
    if (session_ == nullptr) {
      v1::PeerAddress remote = TestPeer("liar");
      remote.set_address(running_.address);
      session_ = transport_.Connect(remote, "r", TestPeer("me"), listener_);
    }
    FetchResult result;
    session_->FetchPiece(ReleasePieceIndex(0), expected_length, timeout,
                         result.Callback());
    return result.Wait();
  }

  ScriptedPeer peer_;
  RunningServer running_;
  GrpcTransport transport_{InsecureSecurity()};
  RecordingListener listener_;
  std::unique_ptr<PeerSession> session_;
};

TEST_F(LyingPeerTest, AcceptsCanonicallyEncodedChunks) {
  peer_.chunks = {Chunk(0, 1000, 1500, 3), Chunk(1000, 500)};
  absl::StatusOr<ReceivedPiece> piece = Fetch(1500);
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_TRUE(piece->data.view() == TestBytes(1000, 0) + TestBytes(500, 0));
  EXPECT_EQ(piece->proof.size(), 3);
}

TEST_F(LyingPeerTest, RefusesWrongPieceLength) {
  peer_.chunks = {Chunk(0, 100, 200)};
  EXPECT_EQ(Fetch(100).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LyingPeerTest, RefusesFirstChunkWithoutPieceLength) {
  peer_.chunks = {Chunk(0, 100)};
  EXPECT_EQ(Fetch(100).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LyingPeerTest, RefusesMoreBytesThanExpected) {
  peer_.chunks = {Chunk(0, 100, 100), Chunk(100, 10)};
  absl::Status status = Fetch(100).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("more than the 100 bytes"));
}

TEST_F(LyingPeerTest, RefusesHugePieceLengthWithoutAllocatingIt) {
  constexpr uint64_t kExpected = 256 << 10;
  peer_.chunks = {Chunk(0, 1000, uint64_t{1} << 40)};
  largest_allocation.store(0);
  EXPECT_EQ(Fetch(kExpected).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_LE(largest_allocation.load(), kExpected + (64 << 10));
}

TEST_F(LyingPeerTest, RefusesOverlappingChunks) {
  peer_.chunks = {Chunk(0, 100, 200), Chunk(50, 100)};
  EXPECT_EQ(Fetch(200).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LyingPeerTest, RefusesChunkPastAGap) {
  peer_.chunks = {Chunk(0, 100, 300), Chunk(200, 100)};
  EXPECT_EQ(Fetch(300).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LyingPeerTest, RefusesProofElementNot32Bytes) {
  peer_.chunks = {Chunk(0, 100, 100, 2, 31)};
  EXPECT_EQ(Fetch(100).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LyingPeerTest, RefusesProofOfMoreThan64Hashes) {
  peer_.chunks = {Chunk(0, 100, 100, 65)};
  EXPECT_EQ(Fetch(100).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LyingPeerTest, AcceptsProofOf64Hashes) {
  peer_.chunks = {Chunk(0, 100, 100, 64)};
  EXPECT_TRUE(Fetch(100).ok());
}

TEST_F(LyingPeerTest, RefusesPieceThatEndsShort) {
  peer_.chunks = {Chunk(0, 100, 200)};
  EXPECT_EQ(Fetch(200).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LyingPeerTest, StallingPeerTimesOutWithDeadlineExceeded) {
  peer_.chunks = {Chunk(0, 100, 200)};
  peer_.stall = true;
  EXPECT_EQ(Fetch(200, absl::Milliseconds(200)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(LyingPeerTest, SecondBitfieldClosesSessionWithDataLoss) {
  v1::Availability first, second;
  first.set_bitfield(std::string(1, '\0'));
  second.set_bitfield(std::string(1, '\x80'));
  peer_.availability = {first, second};
  peer_.chunks = {Chunk(0, 10, 10)};
  ASSERT_TRUE(Fetch(10).ok());
  ASSERT_TRUE(listener_.WaitFor("closed"));
  EXPECT_THAT(listener_.events(),
              ElementsAre("bitfield 00", "closed DATA_LOSS"));
}

TEST_F(LyingPeerTest, FetchesTakeTurnsAcrossConnections) {
  peer_.chunks = {Chunk(0, 10, 10)};
  running_ = ServeOnLoopback(peer_, InsecureSecurity());
  GrpcTransport two(InsecureSecurity(), {.connections_per_remote = 2});
  v1::PeerAddress remote = TestPeer("liar");
  remote.set_address(running_.address);
  RecordingListener listener;
  auto session = two.Connect(remote, "r", TestPeer("me"), listener);
  for (int i = 0; i < 2; ++i) {
    FetchResult result;
    session->FetchPiece(ReleasePieceIndex(0), 10, kTestTimeout,
                        result.Callback());
    ASSERT_TRUE(result.Wait().ok());
  }
  EXPECT_EQ(peer_.callers().size(), 2);
}

TEST_F(LyingPeerTest, SessionsToOneRemoteShareItsConnection) {
  v1::Availability bitfield;
  bitfield.set_bitfield(std::string(1, '\0'));
  peer_.availability = {bitfield};
  running_ = ServeOnLoopback(peer_, InsecureSecurity());
  v1::PeerAddress remote = TestPeer("liar");
  remote.set_address(running_.address);
  RecordingListener a, b;
  auto first = transport_.Connect(remote, "release-a", TestPeer("me"), a);
  auto second = transport_.Connect(remote, "release-b", TestPeer("me"), b);
  ASSERT_TRUE(a.WaitFor("bitfield"));
  ASSERT_TRUE(b.WaitFor("bitfield"));
  EXPECT_EQ(peer_.watch_callers().size(), 1);
}

}  // namespace
}  // namespace shoal::agent
