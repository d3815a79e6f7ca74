#pragma once

// The client half of the agent-to-agent data plane: Transport over gRPC
// (shoal.v1.Peer, served by agent/peer_service.h), on gRPC's callback API so
// that thousands of sessions and fetches need no thread each.
//
// Each remote address gets a small set of connections (gRPC channels) from
// the GrpcSecurity factory, shared by every session to that address whatever
// the release. Connections nobody uses are closed at a later Connect or with
// the transport. Watch
// runs on the first connection; fetches take turns across all of them
// (separate connections scaled on these machines, several calls on one did
// not; see ../shared/notes/data-plane-measurements.md).
//
// A fetched piece is assembled straight from the received gRPC buffers into
// one buffer of the expected length; nothing is ever allocated from a length
// the remote claims. The bytes are unverified: the caller checks the proof.

#include <cstddef>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "agent/piece_assembler.h"
#include "agent/transport.h"
#include "common/grpc_security.h"

namespace shoal::agent {

struct GrpcTransportOptions {
  // Connections per remote address, at least 1.
  int connections_per_remote = 2;
};

class RemoteConnections;  // grpc_transport.cc
struct Liveness;          // grpc_transport.cc

// Thread-safe. Must outlive the sessions it makes. Destroy it on a thread of
// the caller's, not in a transport callback: its destructor waits for the
// calls of destroyed sessions to end. Connect, too, may close idle channels;
// that is safe on a transport thread as long as the process keeps another
// gRPC channel or server (an agent's peer service) alive.
class GrpcTransport final : public Transport {
 public:
  // CHECK-fails unless options.connections_per_remote >= 1.
  explicit GrpcTransport(GrpcSecurity security,
                         GrpcTransportOptions options = {});
  // CHECK-fails while sessions exist.
  ~GrpcTransport() override;

  GrpcTransport(const GrpcTransport&) = delete;
  GrpcTransport& operator=(const GrpcTransport&) = delete;

  // Starts the Watch call. Never fails here: a remote that cannot be dialled
  // (a malformed address, a non-loopback one with --insecure) or reached
  // shows as OnClosed(UNAVAILABLE or FAILED_PRECONDITION) and failing
  // fetches, on a transport thread.
  //
  // Session semantics beyond PeerSession's: the listener sees OnBitfield
  // first (with the first message's haves and peers after it), then OnHave
  // and OnPeers, and OnClosed exactly once unless the session is destroyed
  // first; a second bitfield closes the session with DATA_LOSS. FetchPiece
  // errors are those of PeerSession::FetchPiece; DATA_LOSS also for a
  // piece_length other than `expected_length`, a proof element not 32 bytes,
  // more than kMaxProofLength of them, or an empty or malformed chunk.
  //
  // The session's destructor cancels its calls, waits for its callbacks
  // running on other threads, and destroys the FetchPiece callbacks that
  // have not run; it never waits for the network, so it may run anywhere,
  // also inside one of the session's own callbacks. The cancelled calls end
  // in the background; the transport's destructor waits for them.
  std::unique_ptr<PeerSession> Connect(const v1::PeerAddress& remote,
                                       const std::string& release_id,
                                       const v1::PeerAddress& self,
                                       SessionListener& listener) override;

 private:
  std::shared_ptr<RemoteConnections> ConnectionsTo(const std::string& address);

  const GrpcSecurity security_;
  const GrpcTransportOptions options_;
  // Shared with sessions and calls, which count themselves in it.
  const std::shared_ptr<Liveness> liveness_;
  absl::Mutex mu_;
  // Declared after liveness_: destroyed before it, after the destructor
  // waited for the calls.
  absl::flat_hash_map<std::string, std::shared_ptr<RemoteConnections>> remotes_
      ABSL_GUARDED_BY(mu_);
  size_t connects_since_sweep_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::agent
