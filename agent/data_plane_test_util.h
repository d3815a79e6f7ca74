#pragma once

// Helpers for tests of the gRPC data plane (agent/data_plane_test.cc,
// agent/lying_peer_test.cc): recording listeners, fetch results, a gRPC
// server on 127.0.0.1:0, a pacer the test drives. All waits give up after
// kTestTimeout, a safety net that a passing test never reaches.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/peer_service.h"
#include "agent/transport.h"
#include "common/grpc_security.h"

namespace shoal::agent {

inline constexpr absl::Duration kTestTimeout = absl::Seconds(30);

// `size` pseudo-random bytes, the same for the same seed.
std::string TestBytes(size_t size, int seed);

// A proof of `length` made-up hashes.
MerkleProof TestProof(int length, int seed);

// A peer named `id` in datacenter `dc`.
v1::PeerAddress TestPeer(const std::string& id, const std::string& dc = "dc1");

// Insecure (loopback-only) security.
GrpcSecurity InsecureSecurity();

// Records what a session reports, one string per event: "bitfield <hex>",
// "have <piece>" (one per piece), "peers <id>,<id>", "closed <CODE>".
// Thread-safe.
class RecordingListener final : public SessionListener {
 public:
  void OnBitfield(std::string bitfield) override;
  void OnHave(std::vector<ReleasePieceIndex> pieces) override;
  void OnPeers(std::vector<v1::PeerAddress> peers) override;
  void OnClosed(absl::Status why) override;

  // Waits until `n` events starting with `prefix` were recorded.
  bool WaitFor(const std::string& prefix, int n = 1);
  std::vector<std::string> events() const;

 private:
  void Add(std::string event);

  mutable absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

// One fetch's outcome. Callback() at most once.
class FetchResult {
 public:
  PeerSession::PieceCallback Callback();
  // The result, or INTERNAL if none came in time.
  absl::StatusOr<ReceivedPiece> Wait();

 private:
  absl::Notification done_;
  absl::StatusOr<ReceivedPiece> result_;
};

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  std::string address;  // 127.0.0.1:<port>
};

// Serves `service` on 127.0.0.1:0. CHECK-fails if it cannot.
RunningServer ServeOnLoopback(grpc::Service& service,
                              const GrpcSecurity& security);

// Grants upload chunks only when the test says so. Thread-safe.
class HoldingPacer final : public UploadPacer {
 public:
  void Acquire(uint64_t bytes, absl::AnyInvocable<void() &&> proceed) override;

  // Waits until `n` requests came in all.
  bool WaitForRequests(size_t n);
  // Grants the requests waiting now.
  void GrantWaiting();
  // Bytes asked for, in order.
  std::vector<uint64_t> requests() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<uint64_t> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void() &&>> waiting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::agent
