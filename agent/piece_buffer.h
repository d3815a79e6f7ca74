#pragma once

// The memory one piece travels in on an agent: received from a peer, hashed,
// written to its file, read back and sent on. Aligned to a page so that the
// store can hand it to the kernel for direct I/O (no copy into the page
// cache) and so that the kernel's copies, where there are any, run at full
// speed: this CPU copies several times slower between addresses that sit at
// different offsets within a page (../shared/notes/data-plane-measurements.md).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "absl/strings/string_view.h"

namespace shoal::agent {

class PieceBuffer {
 public:
  static constexpr size_t kAlignment = 4096;

  PieceBuffer() = default;
  // `size` bytes, not initialized. Aborts if memory runs out, as operator
  // new would.
  explicit PieceBuffer(size_t size);
  static PieceBuffer CopyOf(absl::string_view bytes);

  PieceBuffer(PieceBuffer&&) = default;
  PieceBuffer& operator=(PieceBuffer&&) = default;

  char* data() { return bytes_.get(); }
  const char* data() const { return bytes_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  absl::string_view view() const { return absl::string_view(data(), size_); }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> bytes_;
  size_t size_ = 0;
};

// Whether `p` and `n` suit direct I/O at an aligned file offset.
inline bool IsDirectIoAligned(const void* p, size_t n) {
  return reinterpret_cast<uintptr_t>(p) % PieceBuffer::kAlignment == 0 &&
         n % PieceBuffer::kAlignment == 0;
}

}  // namespace shoal::agent
