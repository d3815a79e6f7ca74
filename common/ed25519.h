#pragma once

// Ed25519 publisher keys: generation, signing, verification, and the PEM
// files `shoal-publish keygen` writes (PKCS#8 for the private key,
// SubjectPublicKeyInfo for the public key, as `openssl pkey` reads and
// writes them).
//
// Keys are copyable values holding raw bytes; each operation builds what the
// crypto library needs and releases it again. Only the part of the OpenSSL
// API that BoringSSL shares is used. The crypto library's thread-local error
// queue is left empty after every call, so that a failure here never shows
// up later as a spurious error in TLS code sharing the thread.
//
// Every class is immutable and thread-safe; every function is thread-safe.

#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

inline constexpr size_t kEd25519PublicKeyBytes = 32;
inline constexpr size_t kEd25519PrivateKeyBytes = 32;  // The RFC 8032 seed.
inline constexpr size_t kEd25519SignatureBytes = 64;
// Length of PublicKey::short_key_id(), in hex digits.
inline constexpr size_t kShortKeyIdChars = 16;

// An Ed25519 public key.
class PublicKey {
 public:
  // INVALID_ARGUMENT unless `raw32` is exactly 32 bytes.
  static absl::StatusOr<PublicKey> FromRaw(absl::string_view raw32);
  // Parses a SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----"), as
  // `openssl pkey -pubout` writes it. INVALID_ARGUMENT if there is no such
  // block, it does not decode, or the key is not Ed25519.
  static absl::StatusOr<PublicKey> FromPem(absl::string_view pem);

  // The 32 raw key bytes.
  const std::string& raw() const { return raw_; }
  // Lower-case hex SHA-256 of raw(): how manifests and trust files name keys.
  std::string key_id() const;
  // The first kShortKeyIdChars characters of key_id(), for messages.
  std::string short_key_id() const;
  // SubjectPublicKeyInfo PEM, ending in a newline.
  std::string ToPem() const;

  // True iff `signature` is a valid Ed25519 signature of `message` by this
  // key. Anything malformed (wrong length, non-canonical) is simply false.
  bool Verify(absl::string_view message, absl::string_view signature) const;

  friend bool operator==(const PublicKey& a, const PublicKey& b) {
    return a.raw_ == b.raw_;
  }
  friend bool operator!=(const PublicKey& a, const PublicKey& b) {
    return !(a == b);
  }

 private:
  friend class PrivateKey;
  explicit PublicKey(std::string raw) : raw_(std::move(raw)) {}

  std::string raw_;
};

// An Ed25519 private key and its public key. The secret bytes are wiped from
// memory when the value is destroyed.
class PrivateKey {
 public:
  // A new key from the crypto library's random generator. INTERNAL if the
  // library fails.
  static absl::StatusOr<PrivateKey> Generate();
  // Parses an unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), as
  // `openssl genpkey -algorithm ed25519` writes it. INVALID_ARGUMENT if there
  // is no such block, it is encrypted, it does not decode, or the key is not
  // Ed25519.
  static absl::StatusOr<PrivateKey> FromPem(absl::string_view pem);

  PrivateKey(const PrivateKey&) = default;
  PrivateKey& operator=(const PrivateKey&) = default;
  PrivateKey(PrivateKey&&) = default;
  PrivateKey& operator=(PrivateKey&&) = default;
  ~PrivateKey();

  // Unencrypted PKCS#8 PEM, ending in a newline. Handle it as a secret.
  std::string ToPem() const;
  const PublicKey& public_key() const { return public_key_; }

  // The 64-byte Ed25519 signature of `message`. INTERNAL if the crypto
  // library fails.
  absl::StatusOr<std::string> Sign(absl::string_view message) const;

 private:
  PrivateKey(std::string seed, PublicKey public_key)
      : seed_(std::move(seed)), public_key_(std::move(public_key)) {}

  std::string seed_;  // The 32-byte RFC 8032 private key.
  PublicKey public_key_;
};

// Writes `key` as PEM to a new file at `path` with mode 0600 from creation
// (never briefly readable by others): a temporary file beside `path` is
// written and synced, then linked into place. ALREADY_EXISTS if `path`
// exists: an existing key is never replaced. Other errors name the path.
absl::Status WritePrivateKeyFile(const std::string& path,
                                 const PrivateKey& key);

// Writes `key` as PEM to `path` with mode 0644, atomically replacing any
// existing file. Errors name the path.
absl::Status WritePublicKeyFile(const std::string& path, const PublicKey& key);

// Read a key file written above or by `openssl pkey`. NOT_FOUND or
// PERMISSION_DENIED if it cannot be opened, INVALID_ARGUMENT if it does not
// hold such a key; every message names the path.
absl::StatusOr<PrivateKey> ReadPrivateKeyFile(const std::string& path);
absl::StatusOr<PublicKey> ReadPublicKeyFile(const std::string& path);

}  // namespace shoal
