#include "agent/piece_buffer.h"

#include <cstring>

#include "glog/logging.h"

namespace shoal::agent {

PieceBuffer::PieceBuffer(size_t size) : size_(size) {
  if (size == 0) return;
  // aligned_alloc wants a multiple of the alignment.
  const size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;
  bytes_.reset(static_cast<char*>(std::aligned_alloc(kAlignment, rounded)));
  CHECK(bytes_ != nullptr) << "out of memory for a piece of " << size
                           << " bytes";
}

PieceBuffer PieceBuffer::CopyOf(absl::string_view bytes) {
  PieceBuffer buffer(bytes.size());
  if (!bytes.empty()) memcpy(buffer.data(), bytes.data(), bytes.size());
  return buffer;
}

}  // namespace shoal::agent
