#pragma once

// Assembles one piece from FetchPiece's PieceChunk messages in wire form, as
// they come off a gRPC stream, checking everything a lying remote could get
// wrong: lengths, offsets, proof sizes. Used by GrpcTransport; separate so
// that the parsing of untrusted bytes can be tested alone.

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/transport.h"

namespace google::protobuf::io {
class CodedInputStream;
}  // namespace google::protobuf::io

namespace shoal::agent {

// Most uncle hashes a piece may carry: a file of 2^64 bytes in 16 KiB pieces
// needs 50.
inline constexpr size_t kMaxProofLength = 64;

// Copies the data once, from the received buffers into a buffer of the
// expected length, allocated at the first data and never from a length the
// remote claims. The first chunk must carry piece_length (equal to the
// expected length) and the proof; later ones only offset and data. Chunks
// must be non-empty and contiguous from offset 0; unknown fields are
// skipped. Not thread-safe.
class PieceAssembler {
 public:
  explicit PieceAssembler(uint64_t expected_length)
      : expected_length_(expected_length) {}

  // Takes the next chunk (its slices are read, not kept). DATA_LOSS for a
  // malformed chunk or one that is not the next of the piece; the assembler
  // is then of no further use.
  absl::Status Add(grpc::ByteBuffer& chunk);

  // DATA_LOSS unless exactly the expected bytes arrived.
  absl::StatusOr<ReceivedPiece> Finish();

 private:
  absl::Status ReadData(google::protobuf::io::CodedInputStream& in,
                        uint64_t offset);
  absl::Status ReadProofElement(google::protobuf::io::CodedInputStream& in);
  absl::Status CheckPieceLength(uint64_t piece_length) const;

  const uint64_t expected_length_;
  uint64_t received_ = 0;
  int chunks_ = 0;
  ReceivedPiece piece_;
};

}  // namespace shoal::agent
