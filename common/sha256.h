#pragma once

// SHA-256 digests: one-shot and streaming hashing, and conversions between a
// digest and its raw or hexadecimal form.
//
// Built on the digest API that OpenSSL 3 and BoringSSL share, so the same code
// links against either library.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

inline constexpr size_t kDigestSize = 32;

// A SHA-256 digest: 32 raw bytes.
using Digest = std::array<uint8_t, kDigestSize>;

// The SHA-256 digest of `data`. Thread-safe.
Digest Sha256(absl::string_view data);

// SHA-256 of the 64 bytes `left || right`: the parent of two Merkle nodes.
// Thread-safe.
Digest Sha256Pair(const Digest& left, const Digest& right);

// The 64 lower-case hexadecimal digits of `d`.
std::string DigestToHex(const Digest& d);

// A view of the 32 raw bytes of `d`; valid as long as `d` is.
absl::string_view DigestBytes(const Digest& d);

// INVALID_ARGUMENT unless `raw` is exactly 32 bytes.
absl::StatusOr<Digest> DigestFromBytes(absl::string_view raw);

// INVALID_ARGUMENT unless `hex` is exactly 64 hexadecimal digits (either case).
absl::StatusOr<Digest> DigestFromHex(absl::string_view hex);

// Streaming SHA-256 of a message fed in any number of pieces.
//
//   Sha256Hasher hasher;
//   hasher.Update(header);
//   hasher.Update(body);
//   Digest d = hasher.Finish();  // the hasher is now ready for a new message
//
// A hasher can be reused for many messages, which is cheaper than creating
// one per message. Not thread-safe. Movable, not copyable; a moved-from
// hasher may only be destroyed or assigned to.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&& other) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  // Appends `data` to the message.
  void Update(absl::string_view data);

  // Returns the digest of the message given since construction or the
  // previous Finish(), and starts a new, empty message.
  Digest Finish();

 private:
  struct State;  // Holds the library's digest contexts.
  std::unique_ptr<State> state_;
};

}  // namespace shoal
