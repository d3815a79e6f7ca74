#pragma once

// Trust policies: which publisher keys a verifier trusts, and how many
// distinct ones must sign a manifest before it is believed.
//
// On disk a policy is a trust file: the JSON form of shoal.v1.TrustFile, with
// the raw public keys in base64 as protobuf's JSON mapping writes bytes:
//
//   {
//    "keys": [
//     {
//      "key_id": "3f2a...",        (hex SHA-256 of the raw key; checked)
//      "public_key": "11qYAYKx..."  (32 raw Ed25519 key bytes, base64)
//     }
//    ],
//    "threshold": 1
//   }
//
// The lowerCamelCase names "keyId" and "publicKey" are accepted as well.
// A public key PEM written by `shoal-publish keygen` also serves as a trust
// file: it trusts that key alone, with threshold 1.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/ed25519.h"
#include "shoal/v1/manifest.pb.h"

namespace shoal {

// Trust files are a few keys; anything much larger is not one.
inline constexpr uint64_t kMaxTrustFileBytes = 1 << 20;

// Which publisher keys are trusted, and how many distinct ones must sign.
// Immutable value; copyable; thread-safe.
class TrustPolicy {
 public:
  // INVALID_ARGUMENT if `keys` is empty, holds the same key twice, or
  // `threshold` is 0 or more than the number of keys.
  static absl::StatusOr<TrustPolicy> Create(std::vector<PublicKey> keys,
                                            uint32_t threshold);
  // As Create, and INVALID_ARGUMENT if a public key is not 32 bytes or a
  // key_id is not the hex SHA-256 of its public key.
  static absl::StatusOr<TrustPolicy> FromProto(const v1::TrustFile& file);
  // Reads a trust file (JSON, above) or a public key PEM, told apart by
  // content. NOT_FOUND / PERMISSION_DENIED if the file cannot be read,
  // INVALID_ARGUMENT if it holds neither (or a private key); every message
  // names the path.
  static absl::StatusOr<TrustPolicy> Load(const std::string& path);

  v1::TrustFile ToProto() const;
  // The trust file form: pretty-printed JSON ending in a newline.
  std::string ToJson() const;

  // In the order given to Create or listed in the file.
  const std::vector<PublicKey>& keys() const { return keys_; }
  uint32_t threshold() const { return threshold_; }

  // The trusted key whose key_id() is `key_id` (lower-case hex), or nullptr.
  // The pointer is valid as long as this policy is.
  const PublicKey* FindKey(absl::string_view key_id) const;

  // "2 of 3 keys (3f2a1b2c3d4e5f60, ...)": for messages.
  std::string Describe() const;

 private:
  TrustPolicy(std::vector<PublicKey> keys, uint32_t threshold);

  std::vector<PublicKey> keys_;
  absl::flat_hash_map<std::string, size_t> index_by_key_id_;
  uint32_t threshold_;
};

// Writes `policy` as a trust file at `path` (mode 0644), atomically replacing
// any existing file. Errors name the path.
absl::Status WriteTrustFile(const std::string& path, const TrustPolicy& policy);

}  // namespace shoal
