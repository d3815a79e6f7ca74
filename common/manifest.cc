#include "common/manifest.h"

#include <algorithm>
#include <climits>
#include <limits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/merkle.h"
#include "common/paths.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace shoal {

struct Manifest::Parsed {
  v1::SignedManifest signed_manifest;
  v1::ManifestBody body;
  std::string release_id;
  uint64_t total_size = 0;
};

namespace {

constexpr uint64_t kMaxTotalSize = std::numeric_limits<int64_t>::max();

// Quotes a string from the manifest for a message, escaped and bounded.
std::string Quote(absl::string_view s) {
  constexpr size_t kMaxQuoted = 200;
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kMaxQuoted)),
                      s.size() > kMaxQuoted ? "...\"" : "\"");
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

bool IsPowerOfTwo(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

absl::Status ValidateHeader(const v1::ManifestBody& body) {
  if (body.format() != kManifestFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest format ", body.format(), " is not supported (",
                     "this build reads format ", kManifestFormat, ")"));
  }
  RETURN_IF_ERROR(ValidateReleaseLabel("name", body.name()));
  RETURN_IF_ERROR(ValidateReleaseLabel("version", body.version()));
  if (!IsPowerOfTwo(body.piece_size()) || body.piece_size() < kBlockSize ||
      body.piece_size() > kMaxPieceSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "piece size ", body.piece_size(), " must be a power of two from ",
        kBlockSize, " (16 KiB) to ", kMaxPieceSize, " (1 GiB)"));
  }
  if (body.expires_unix_ms() <= body.created_unix_ms()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expiry ", Rfc3339(absl::FromUnixMillis(body.expires_unix_ms())),
        " is not after creation ",
        Rfc3339(absl::FromUnixMillis(body.created_unix_ms()))));
  }
  return absl::OkStatus();
}

absl::Status FileError(const v1::FileEntry& file, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("file ", Quote(file.path()), ": ", problem));
}

// Checks one entry on its own; ordering and overlaps are checked elsewhere.
absl::Status ValidateFileEntry(const v1::FileEntry& file, uint64_t piece_size) {
  RETURN_IF_ERROR(ValidateRelativePath(file.path()));
  if (file.size() > 0 && file.pieces_root().size() != kDigestSize) {
    return FileError(file,
                     absl::StrCat("pieces_root is ", file.pieces_root().size(),
                                  " bytes; a non-empty file needs 32"));
  }
  if (file.size() == 0 && !file.pieces_root().empty()) {
    return FileError(file, "pieces_root must be empty for an empty file");
  }
  if ((file.mode() & ~07777u) != 0) {
    return FileError(
        file, absl::StrFormat("mode 0%o has bits outside 07777", file.mode()));
  }
  absl::Status geometry =
      FileGeometry::Create(file.size(), piece_size).status();
  if (!geometry.ok()) return FileError(file, geometry.message());
  return absl::OkStatus();
}

// Files must be sorted and unique, and no file may also be a directory on
// another file's path. Expects each path to be valid already.
absl::Status ValidateFileSet(const v1::ManifestBody& body) {
  absl::flat_hash_set<absl::string_view> paths;
  for (int i = 0; i < body.files_size(); ++i) {
    const std::string& path = body.files(i).path();
    if (i > 0 && path == body.files(i - 1).path()) {
      return absl::InvalidArgumentError(
          absl::StrCat("file ", Quote(path), " is listed twice"));
    }
    if (i > 0 && path < body.files(i - 1).path()) {
      return absl::InvalidArgumentError(
          absl::StrCat("files must be sorted by path, but ", Quote(path),
                       " comes after ", Quote(body.files(i - 1).path())));
    }
    paths.insert(path);
  }
  for (const v1::FileEntry& file : body.files()) {
    absl::string_view path = file.path();
    for (size_t slash = path.find('/'); slash != absl::string_view::npos;
         slash = path.find('/', slash + 1)) {
      if (paths.contains(path.substr(0, slash))) {
        return absl::InvalidArgumentError(
            absl::StrCat(Quote(path.substr(0, slash)), " is a file, but ",
                         Quote(path), " needs it to be a directory"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SerializeBody(const v1::ManifestBody& body) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!body.SerializeToCodedStream(&coded) || coded.HadError()) {
      return absl::InternalError("cannot serialize the manifest body");
    }
  }
  return bytes;
}

std::string SignedMessage(absl::string_view body_bytes) {
  return absl::StrCat(kManifestSignatureContext, body_bytes);
}

absl::Status AppendSignature(v1::SignedManifest& manifest,
                             const PrivateKey& key) {
  ASSIGN_OR_RETURN(std::string signature,
                   key.Sign(SignedMessage(manifest.body())));
  v1::Signature* entry = manifest.add_signatures();
  entry->set_key_id(key.public_key().key_id());
  entry->set_signature(std::move(signature));
  return absl::OkStatus();
}

absl::StatusOr<v1::ManifestBody> ParseBody(const std::string& bytes) {
  v1::ManifestBody body;
  if (!body.ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("manifest body (", bytes.size(),
                     " bytes) does not decode as a shoal.v1.ManifestBody"));
  }
  return body;
}

absl::StatusOr<v1::SignedManifest> ParseSigned(absl::string_view bytes) {
  v1::SignedManifest signed_manifest;
  if (bytes.size() > INT_MAX ||
      !signed_manifest.ParseFromArray(bytes.data(),
                                      static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat(
        "manifest (", bytes.size(),
        " bytes) does not decode as a shoal.v1.SignedManifest: it is "
        "truncated, corrupt, or not a Shoal manifest"));
  }
  return signed_manifest;
}

// What the signatures on a manifest amount to under one trust policy.
struct SignatureTally {
  // Key ids of trusted keys with at least one valid signature.
  absl::flat_hash_set<std::string> valid;
  // Short ids of trusted keys whose every signature failed to verify.
  std::vector<std::string> bad;
  // Short ids (escaped: they are untrusted input) of other signers.
  std::vector<std::string> untrusted;
};

void AddOnce(std::vector<std::string>& list, std::string item) {
  if (std::find(list.begin(), list.end(), item) == list.end()) {
    list.push_back(std::move(item));
  }
}

SignatureTally TallySignatures(const v1::SignedManifest& manifest,
                               const TrustPolicy& trust) {
  SignatureTally tally;
  const std::string message = SignedMessage(manifest.body());
  std::vector<const PublicKey*> failed;
  for (const v1::Signature& signature : manifest.signatures()) {
    const PublicKey* key = trust.FindKey(signature.key_id());
    if (key == nullptr) {
      const std::string& id = signature.key_id();
      AddOnce(tally.untrusted,
              id.empty() ? "(no key id)"
                         : absl::CHexEscape(id.substr(0, kShortKeyIdChars)));
    } else if (!tally.valid.contains(signature.key_id())) {
      if (key->Verify(message, signature.signature())) {
        tally.valid.insert(signature.key_id());
      } else {
        failed.push_back(key);
      }
    }
  }
  for (const PublicKey* key : failed) {
    if (!tally.valid.contains(key->key_id())) {
      AddOnce(tally.bad, key->short_key_id());
    }
  }
  return tally;
}

// UNAUTHENTICATED unless valid signatures by at least the threshold of
// distinct trusted keys cover the body bytes.
absl::Status CheckSignatures(const v1::SignedManifest& manifest,
                             const TrustPolicy& trust) {
  const size_t count = manifest.signatures_size();
  if (count == 0) {
    return absl::UnauthenticatedError("manifest carries no signatures");
  }
  if (count > kMaxManifestSignatures) {
    return absl::UnauthenticatedError(absl::StrCat(
        "manifest carries ", count, " signatures, more than the limit of ",
        kMaxManifestSignatures));
  }
  const SignatureTally tally = TallySignatures(manifest, trust);
  if (tally.valid.size() >= trust.threshold()) return absl::OkStatus();
  std::string message;
  if (tally.valid.empty() && tally.bad.empty()) {
    message = absl::StrCat(tally.untrusted.size() > 1
                               ? "manifest signed by untrusted keys "
                               : "manifest signed by an untrusted key ",
                           absl::StrJoin(tally.untrusted, ", "));
  } else {
    message = absl::StrCat("manifest has ", tally.valid.size(), " of ",
                           trust.threshold(), " required signatures");
    if (!tally.bad.empty()) {
      absl::StrAppend(&message, "; bad signature by key",
                      tally.bad.size() > 1 ? "s " : " ",
                      absl::StrJoin(tally.bad, ", "));
    }
    if (!tally.untrusted.empty()) {
      absl::StrAppend(&message,
                      tally.untrusted.size() > 1
                          ? "; ignored signatures by untrusted keys "
                          : "; ignored signature by untrusted key ",
                      absl::StrJoin(tally.untrusted, ", "));
    }
  }
  absl::StrAppend(&message, " (trusted: ", trust.Describe(), ")");
  return absl::UnauthenticatedError(message);
}

}  // namespace

absl::Status ValidateManifestBody(const v1::ManifestBody& body) {
  RETURN_IF_ERROR(ValidateHeader(body));
  uint64_t total = 0;
  for (const v1::FileEntry& file : body.files()) {
    RETURN_IF_ERROR(ValidateFileEntry(file, body.piece_size()));
    if (file.size() > kMaxTotalSize - total) {
      return absl::InvalidArgumentError(absl::StrCat(
          "total size of the files exceeds ", kMaxTotalSize, " bytes"));
    }
    total += file.size();
  }
  return ValidateFileSet(body);
}

absl::StatusOr<v1::SignedManifest> SignManifest(
    const v1::ManifestBody& body, absl::Span<const PrivateKey> keys) {
  if (keys.empty() || keys.size() > kMaxManifestSignatures) {
    return absl::InvalidArgumentError(
        absl::StrCat("a manifest needs 1 to ", kMaxManifestSignatures,
                     " signing keys, not ", keys.size()));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (keys[i].public_key() == keys[j].public_key()) {
        return absl::InvalidArgumentError(
            absl::StrCat("signing key ", keys[i].public_key().short_key_id(),
                         " is given twice; each key signs once"));
      }
    }
  }
  RETURN_IF_ERROR(ValidateManifestBody(body));
  v1::SignedManifest signed_manifest;
  ASSIGN_OR_RETURN(*signed_manifest.mutable_body(), SerializeBody(body));
  for (const PrivateKey& key : keys) {
    RETURN_IF_ERROR(AppendSignature(signed_manifest, key));
  }
  return signed_manifest;
}

absl::Status AddSignature(v1::SignedManifest& manifest, const PrivateKey& key) {
  const std::string key_id = key.public_key().key_id();
  for (const v1::Signature& signature : manifest.signatures()) {
    if (signature.key_id() == key_id) {
      return absl::AlreadyExistsError(
          absl::StrCat("manifest is already signed by key ",
                       key.public_key().short_key_id()));
    }
  }
  if (manifest.signatures_size() >= kMaxManifestSignatures) {
    return absl::FailedPreconditionError(
        absl::StrCat("manifest already carries ", manifest.signatures_size(),
                     " signatures, the most allowed"));
  }
  ASSIGN_OR_RETURN(v1::ManifestBody body, ParseBody(manifest.body()));
  RETURN_IF_ERROR(ValidateManifestBody(body));
  return AppendSignature(manifest, key);
}

std::string ReleaseIdOf(const v1::SignedManifest& manifest) {
  return DigestToHex(Sha256(manifest.body()));
}

absl::StatusOr<Manifest> Manifest::FromSigned(
    v1::SignedManifest signed_manifest) {
  auto parsed = std::make_shared<Parsed>();
  ASSIGN_OR_RETURN(parsed->body, ParseBody(signed_manifest.body()));
  absl::Status valid = ValidateManifestBody(parsed->body);
  if (!valid.ok()) {
    return absl::Status(valid.code(),
                        absl::StrCat("invalid manifest: ", valid.message()));
  }
  parsed->release_id = ReleaseIdOf(signed_manifest);
  for (const v1::FileEntry& file : parsed->body.files()) {
    parsed->total_size += file.size();
  }
  parsed->signed_manifest = std::move(signed_manifest);
  return Manifest(std::move(parsed));
}

absl::StatusOr<Manifest> Manifest::Verify(absl::string_view signed_bytes,
                                          const TrustPolicy& trust,
                                          absl::Time now) {
  ASSIGN_OR_RETURN(v1::SignedManifest signed_manifest,
                   ParseSigned(signed_bytes));
  RETURN_IF_ERROR(CheckSignatures(signed_manifest, trust));
  ASSIGN_OR_RETURN(Manifest manifest, FromSigned(std::move(signed_manifest)));
  if (now >= manifest.expires()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "manifest for ", manifest.display_name(), " (release ",
        manifest.release_id().substr(0, kShortKeyIdChars), ") expired at ",
        Rfc3339(manifest.expires()), " (now ", Rfc3339(now),
        "); the publisher must sign it again with a later expiry"));
  }
  return manifest;
}

absl::StatusOr<Manifest> Manifest::ParseUnverified(
    absl::string_view signed_bytes) {
  ASSIGN_OR_RETURN(v1::SignedManifest signed_manifest,
                   ParseSigned(signed_bytes));
  return FromSigned(std::move(signed_manifest));
}

const v1::SignedManifest& Manifest::signed_manifest() const {
  return parsed_->signed_manifest;
}

const v1::ManifestBody& Manifest::body() const { return parsed_->body; }

const std::string& Manifest::release_id() const { return parsed_->release_id; }

std::string Manifest::display_name() const {
  return absl::StrCat(parsed_->body.name(), "@", parsed_->body.version());
}

absl::Time Manifest::created() const {
  return absl::FromUnixMillis(parsed_->body.created_unix_ms());
}

absl::Time Manifest::expires() const {
  return absl::FromUnixMillis(parsed_->body.expires_unix_ms());
}

uint64_t Manifest::total_size() const { return parsed_->total_size; }

absl::Status CheckNotReplayed(const Manifest& trusted,
                              const Manifest& candidate) {
  const v1::ManifestBody& old_body = trusted.body();
  const v1::ManifestBody& new_body = candidate.body();
  if (old_body.name() != new_body.name() ||
      old_body.version() != new_body.version() ||
      new_body.sequence() >= old_body.sequence()) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat("replayed manifest: ", candidate.display_name(),
                   " sequence ", new_body.sequence(),
                   " is older than trusted sequence ", old_body.sequence()));
}

}  // namespace shoal
