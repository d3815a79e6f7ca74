#pragma once

// Domain ids as distinct types, so that a piece index cannot be passed where a
// block index or a byte offset is expected.

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"

namespace shoal {

// A typed integer. `Tag` only distinguishes the types.
template <typename Tag, typename Int>
class StrongInt {
 public:
  constexpr StrongInt() : value_(0) {}
  constexpr explicit StrongInt(Int value) : value_(value) {}
  constexpr Int value() const { return value_; }

  friend constexpr bool operator==(StrongInt a, StrongInt b) {
    return a.value_ == b.value_;
  }
  friend constexpr bool operator!=(StrongInt a, StrongInt b) {
    return a.value_ != b.value_;
  }
  friend constexpr bool operator<(StrongInt a, StrongInt b) {
    return a.value_ < b.value_;
  }
  friend constexpr bool operator<=(StrongInt a, StrongInt b) {
    return a.value_ <= b.value_;
  }
  friend constexpr bool operator>(StrongInt a, StrongInt b) {
    return a.value_ > b.value_;
  }
  friend constexpr bool operator>=(StrongInt a, StrongInt b) {
    return a.value_ >= b.value_;
  }
  friend std::ostream& operator<<(std::ostream& os, StrongInt v) {
    return os << v.value_;
  }
  template <typename H>
  friend H AbslHashValue(H h, StrongInt v) {
    return H::combine(std::move(h), v.value_);
  }

 private:
  Int value_;
};

// Index of a piece within one file (BEP 52 trees are per file).
using PieceIndex = StrongInt<struct PieceIndexTag, uint32_t>;
// Index of a 16 KiB block within one file.
using BlockIndex = StrongInt<struct BlockIndexTag, uint64_t>;
// Index of a file within a manifest's file list.
using FileIndex = StrongInt<struct FileIndexTag, uint32_t>;

}  // namespace shoal
