#pragma once

// Release manifests: validating a ManifestBody, signing and co-signing it,
// and turning received SignedManifest bytes into a verified Manifest.
//
// A signature covers kManifestSignatureContext followed by the body bytes
// exactly as they travel; verifiers check signatures over the bytes received
// and parse the body only afterwards, so nothing is ever re-encoded before it
// is checked. The release id is the hex SHA-256 of those body bytes.
//
// Error codes used throughout:
//   DATA_LOSS         the bytes do not decode as a SignedManifest or its body
//   UNAUTHENTICATED   the signatures do not satisfy the trust policy
//   INVALID_ARGUMENT  the body breaks a rule of ValidateManifestBody, or the
//                     signing request itself is invalid
//   FAILED_PRECONDITION  the manifest expired, or replays an older signing
//   ALREADY_EXISTS    a key co-signs a manifest it already signed
//
// All functions are thread-safe; Manifest is immutable and thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/ed25519.h"
#include "common/trust.h"
#include "shoal/v1/manifest.pb.h"

namespace shoal {

// The signed message is this context (with its trailing NUL) followed by the
// body bytes, so that a manifest signature is never valid for any other
// message a publisher key might sign.
inline constexpr absl::string_view kManifestSignatureContext{
    "shoal.v1.ManifestBody\0", 22};
// The only ManifestBody.format this code reads and writes.
inline constexpr uint32_t kManifestFormat = 1;
// Largest accepted piece size (1 GiB): a piece is held in memory whole.
inline constexpr uint64_t kMaxPieceSize = uint64_t{1} << 30;
// Most signatures a manifest may carry. Far above any sensible threshold; it
// bounds the work an attacker can cause by stuffing in bogus signatures.
inline constexpr size_t kMaxManifestSignatures = 64;

// OK iff `body` is a manifest this code can act on. INVALID_ARGUMENT naming
// the problem (and the file, if it is about one) when: format is not
// kManifestFormat; name or version fails ValidateReleaseLabel; piece_size is
// not a power of two from kBlockSize to kMaxPieceSize; expires is not after
// created; files are not sorted by path (bytewise, as std::string compares)
// or a path repeats; a path fails ValidateRelativePath; a path is both a file
// and a directory of another file ("a" and "a/b"); pieces_root is not 32
// bytes for a non-empty file or not empty for an empty file; mode has bits
// outside 07777; a file has 2^32 or more pieces; or the total size exceeds
// 2^63 - 1 bytes. An empty file list is valid.
absl::Status ValidateManifestBody(const v1::ManifestBody& body);

// Serializes `body` once (deterministically) and signs those bytes with every
// key, in order. INVALID_ARGUMENT if the body is invalid, `keys` is empty or
// longer than kMaxManifestSignatures, or two keys are the same.
absl::StatusOr<v1::SignedManifest> SignManifest(
    const v1::ManifestBody& body, absl::Span<const PrivateKey> keys);

// Adds `key`'s signature over the body bytes already in `manifest` (never
// re-encoded). ALREADY_EXISTS if that key already signed; DATA_LOSS or
// INVALID_ARGUMENT if the body does not decode or is invalid (a co-signer
// never signs what it cannot check); FAILED_PRECONDITION if the manifest
// already carries kMaxManifestSignatures signatures. `manifest` is unchanged
// on error.
absl::Status AddSignature(v1::SignedManifest& manifest, const PrivateKey& key);

// The release id: hex SHA-256 of the body bytes as signed.
std::string ReleaseIdOf(const v1::SignedManifest& manifest);

// A parsed, validated manifest. Copies share one immutable parse, so a
// Manifest is cheap to copy and pass between threads. Thread-safe.
class Manifest {
 public:
  // Parses SignedManifest bytes, checks the signatures over the exact body
  // bytes against `trust`, then parses and validates the body, and refuses it
  // once `now` reaches its expiry.
  //
  // Counting: a trusted key counts once however many times it signed, and
  // only for a signature that verifies. Signatures by untrusted keys and
  // invalid signatures are ignored as long as valid signatures by at least
  // threshold trusted keys remain; otherwise the error lists them.
  //
  // Errors:
  //   DATA_LOSS: the bytes or the body do not decode.
  //   UNAUTHENTICATED, one of:
  //     "manifest signed by an untrusted key 3f2a1b2c3d4e5f60 (trusted:
  //      1 of 1 key (9c0d...))" when only untrusted keys signed;
  //     "manifest has 1 of 2 required signatures; bad signature by key ...;
  //      ignored signature by untrusted key ... (trusted: 2 of 3 keys
  //      (...))" otherwise;
  //     "manifest carries no signatures";
  //     "manifest carries 65 signatures, more than the limit of 64".
  //   INVALID_ARGUMENT: the body fails ValidateManifestBody.
  //   FAILED_PRECONDITION: "manifest for name@version (release 3f2a...)
  //     expired at 2024-05-01T00:00:00Z (now 2024-05-02T...Z)".
  static absl::StatusOr<Manifest> Verify(absl::string_view signed_bytes,
                                         const TrustPolicy& trust,
                                         absl::Time now);

  // Parses and validates without checking signatures or expiry: for
  // `inspect`-style display only. Never act on its content. DATA_LOSS or
  // INVALID_ARGUMENT as for Verify.
  static absl::StatusOr<Manifest> ParseUnverified(
      absl::string_view signed_bytes);

  const v1::SignedManifest& signed_manifest() const;
  const v1::ManifestBody& body() const;
  // Hex SHA-256 of the body bytes.
  const std::string& release_id() const;
  // "name@version".
  std::string display_name() const;
  absl::Time created() const;
  absl::Time expires() const;
  // Sum of the file sizes; at most 2^63 - 1.
  uint64_t total_size() const;

 private:
  struct Parsed;
  // Parses and validates the body of a SignedManifest.
  static absl::StatusOr<Manifest> FromSigned(
      v1::SignedManifest signed_manifest);
  explicit Manifest(std::shared_ptr<const Parsed> parsed)
      : parsed_(std::move(parsed)) {}

  // Shared, never mutated: copies of a Manifest all point at one parse.
  std::shared_ptr<const Parsed> parsed_;
};

// FAILED_PRECONDITION "replayed manifest: name@version sequence S is older
// than trusted sequence T" when `candidate` is the same name@version as
// `trusted` with a lower sequence. OK otherwise: the same or a higher
// sequence, or a different release.
absl::Status CheckNotReplayed(const Manifest& trusted,
                              const Manifest& candidate);

}  // namespace shoal
