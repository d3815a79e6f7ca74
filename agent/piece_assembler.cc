#include "agent/piece_assembler.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "shoal/v1/peer.pb.h"

namespace shoal::agent {
namespace {

using google::protobuf::internal::WireFormatLite;

absl::Status Malformed(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("malformed piece chunk: ", what));
}

}  // namespace

absl::Status PieceAssembler::Add(grpc::ByteBuffer& chunk) {
  grpc::ProtoBufferReader reader(&chunk);
  google::protobuf::io::CodedInputStream in(&reader);
  const bool first = chunks_++ == 0;
  uint64_t offset = 0;
  bool has_data = false, has_length = false;
  while (const uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const bool varint =
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_VARINT;
    const bool bytes = WireFormatLite::GetTagWireType(tag) ==
                       WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (field == v1::PieceChunk::kOffsetFieldNumber && varint && !has_data) {
      if (!in.ReadVarint64(&offset)) return Malformed("truncated offset");
    } else if (field == v1::PieceChunk::kDataFieldNumber && bytes &&
               !has_data) {
      has_data = true;
      if (absl::Status s = ReadData(in, offset); !s.ok()) return s;
    } else if (field == v1::PieceChunk::kPieceLengthFieldNumber && varint &&
               first) {
      uint64_t piece_length = 0;
      if (!in.ReadVarint64(&piece_length)) return Malformed("truncated length");
      if (absl::Status s = CheckPieceLength(piece_length); !s.ok()) return s;
      has_length = true;
    } else if (field == v1::PieceChunk::kProofFieldNumber && bytes && first) {
      if (absl::Status s = ReadProofElement(in); !s.ok()) return s;
    } else if (field >= v1::PieceChunk::kOffsetFieldNumber &&
               field <= v1::PieceChunk::kProofFieldNumber) {
      return Malformed(absl::StrCat("unexpected field ", field));
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return Malformed("truncated unknown field");
    }
  }
  if (!in.ConsumedEntireMessage()) return Malformed("bad field tag");
  if (!has_data) return Malformed("chunk without data");
  if (first && !has_length) return Malformed("first chunk without length");
  return absl::OkStatus();
}

absl::Status PieceAssembler::ReadData(
    google::protobuf::io::CodedInputStream& in, uint64_t offset) {
  uint32_t length = 0;
  if (!in.ReadVarint32(&length)) return Malformed("truncated data");
  if (length == 0) return Malformed("empty data");
  if (offset != received_) {
    return absl::DataLossError(absl::StrCat("piece chunk at offset ", offset,
                                            "; expected ", received_));
  }
  if (length > expected_length_ - received_) {
    return absl::DataLossError(absl::StrCat(
        "remote sent more than the ", expected_length_, " bytes of the piece"));
  }
  if (piece_.data.empty()) piece_.data = PieceBuffer(expected_length_);
  if (!in.ReadRaw(piece_.data.data() + received_, length)) {
    return Malformed("truncated data");
  }
  received_ += length;
  return absl::OkStatus();
}

absl::Status PieceAssembler::ReadProofElement(
    google::protobuf::io::CodedInputStream& in) {
  uint32_t length = 0;
  if (!in.ReadVarint32(&length)) return Malformed("truncated proof");
  if (length != kDigestSize) {
    return absl::DataLossError(absl::StrCat(
        "proof element of ", length, " bytes; hashes are ", kDigestSize));
  }
  if (piece_.proof.size() == kMaxProofLength) {
    return absl::DataLossError(
        absl::StrCat("proof longer than ", kMaxProofLength, " hashes"));
  }
  Digest& digest = piece_.proof.emplace_back();
  if (!in.ReadRaw(digest.data(), kDigestSize)) {
    return Malformed("truncated proof");
  }
  return absl::OkStatus();
}

absl::Status PieceAssembler::CheckPieceLength(uint64_t piece_length) const {
  if (piece_length == expected_length_) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("remote says the piece is ",
                                          piece_length, " bytes; expected ",
                                          expected_length_));
}

absl::StatusOr<ReceivedPiece> PieceAssembler::Finish() {
  if (received_ != expected_length_) {
    return absl::DataLossError(absl::StrCat(
        "piece ended after ", received_, " of ", expected_length_, " bytes"));
  }
  return std::move(piece_);
}

}  // namespace shoal::agent
