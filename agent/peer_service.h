#pragma once

// The serving half of the agent-to-agent data plane: the gRPC service
// shoal.v1.Peer over a PieceSource. Watch streams what this agent holds of a
// release (the bitfield, then pieces as they are verified, batched, and now and
// then a peer-exchange list); FetchPiece streams one verified piece with its
// proof in chunks of at most kMaxChunkBytes.
//
// Typical use in the agent:
//
//   PeerService peers(registry, PeerServiceOptions{.max_uploads = 16});
//   grpc::ServerBuilder builder;
//   security.ConfigureServer(builder);
//   builder.RegisterService(&peers);
//   ... server = builder.BuildAndStart();
//   ...
//   peers.Shutdown();   // ends the Watch streams, so that
//   server->Shutdown(); // need not wait for them

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/piece_source.h"
#include "shoal/v1/peer.grpc.pb.h"

namespace shoal::agent {

// Largest piece data in one PieceChunk (the protocol's limit).
inline constexpr size_t kMaxChunkBytes = 1 << 20;

// Paces the bytes the peer service uploads (the --upload_limit seam).
// Thread-safe.
class UploadPacer {
 public:
  virtual ~UploadPacer() = default;

  // Asks to send `bytes` more. Calls `proceed` exactly once when they may
  // go: inline when within the limit, later from any thread otherwise. Must
  // not block. The upload keeps its slot until `proceed` runs, and server
  // shutdown waits for it, so every request must be granted eventually.
  virtual void Acquire(uint64_t bytes,
                       absl::AnyInvocable<void() &&> proceed) = 0;
};

struct PeerServiceOptions {
  // FetchPiece streams served at once; a request beyond them is refused at
  // once with RESOURCE_EXHAUSTED (never queued).
  int max_uploads = 32;
  // How often every Watch stream gets a peer-exchange list. The first list
  // goes out with the bitfield.
  absl::Duration pex_interval = absl::Seconds(30);
  // Addresses in one peer-exchange list.
  size_t pex_limit = 32;
  // Piece bytes per PieceChunk; 1 to kMaxChunkBytes.
  size_t chunk_bytes = kMaxChunkBytes;
  // Paces uploads when set; must outlive the service.
  UploadPacer* pacer = nullptr;
};

class WatchHub;  // The live Watch streams; peer_service.cc.

// shoal.v1.Peer over `source`. FetchPiece is registered in its raw form so
// that chunks are sent as slices of the piece read from the source, with no
// copy of the bytes on our side.
//
// Errors on the wire: NOT_FOUND for an unknown release or a piece not held
// (from the source), RESOURCE_EXHAUSTED when the upload slots are full,
// INVALID_ARGUMENT for a request that does not parse, UNAVAILABLE for Watch
// streams ended by Shutdown(), other source errors as they come.
//
// Thread-safe. Owns one thread that sends the periodic peer-exchange lists.
// Must outlive the grpc::Server it is registered with (shut that down first).
class PeerService final : public v1::Peer::WithRawCallbackMethod_FetchPiece<
                              v1::Peer::CallbackService> {
 public:
  // `source` must outlive the service. CHECK-fails on options out of range.
  PeerService(PieceSource& source, PeerServiceOptions options);
  ~PeerService() override;

  PeerService(const PeerService&) = delete;
  PeerService& operator=(const PeerService&) = delete;

  // Ends every Watch stream with UNAVAILABLE and refuses new ones, so that
  // grpc::Server::Shutdown() need not wait for its deadline. Idempotent.
  void Shutdown();

  // FetchPiece streams being served now.
  int uploads_in_flight() const;

  grpc::ServerWriteReactor<v1::Availability>* Watch(
      grpc::CallbackServerContext* context,
      const v1::WatchRequest* request) override;

  grpc::ServerWriteReactor<grpc::ByteBuffer>* FetchPiece(
      grpc::CallbackServerContext* context,
      const grpc::ByteBuffer* request) override;

 private:
  // Takes an upload slot; false when all are taken.
  bool TryAcquireUpload();
  void ReleaseUpload();

  PieceSource& source_;
  const PeerServiceOptions options_;
  std::unique_ptr<WatchHub> hub_;

  mutable absl::Mutex mu_;
  int uploads_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::agent
