#include "common/ed25519.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <stdlib.h>  // mkostemp
#include <unistd.h>

#include <memory>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal {
namespace {

// Key files are a few hundred bytes; anything much larger is not a key.
constexpr size_t kMaxKeyFileBytes = 64 * 1024;

struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct EvpPkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

// Empties the thread's error queue and describes what was in it.
std::string DrainErrors() {
  std::string out;
  while (auto code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "no detail" : out;
}

absl::Status CryptoError(absl::string_view what) {
  return absl::InternalError(
      absl::StrCat(what, " failed in the crypto library: ", DrainErrors()));
}

// Never prompts for a passphrase: encrypted keys are refused instead.
int NoPassphrase(char*, int, int, void*) { return 0; }

// A read-only memory BIO over `pem`, which must hold a PEM block `label`.
absl::StatusOr<Bio> PemBio(absl::string_view pem, absl::string_view label) {
  if (pem.size() > kMaxKeyFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PEM text of ", pem.size(), " bytes is too large to be a key"));
  }
  const std::string begin = absl::StrCat("-----BEGIN ", label, "-----");
  if (!absl::StrContains(pem, begin)) {
    return absl::InvalidArgumentError(
        absl::StrCat("no \"", begin, "\" block: not a ",
                     absl::AsciiStrToLower(label), " PEM"));
  }
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return CryptoError("reading PEM text");
  return bio;
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : "";
}

absl::Status CheckEd25519(EVP_PKEY* pkey) {
  const int type = EVP_PKEY_id(pkey);
  if (type == EVP_PKEY_ED25519) return absl::OkStatus();
  const char* name = OBJ_nid2sn(type);
  return absl::InvalidArgumentError(
      absl::StrCat("key is ", name != nullptr ? name : "of an unknown type",
                   ", not Ed25519 (generate one with `shoal-publish keygen`)"));
}

absl::StatusOr<std::string> RawPublic(EVP_PKEY* pkey) {
  std::string raw(kEd25519PublicKeyBytes, '\0');
  size_t size = raw.size();
  if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<uint8_t*>(raw.data()),
                                  &size) != 1 ||
      size != raw.size()) {
    return CryptoError("reading the raw public key");
  }
  return raw;
}

absl::StatusOr<std::string> RawPrivate(EVP_PKEY* pkey) {
  std::string raw(kEd25519PrivateKeyBytes, '\0');
  size_t size = raw.size();
  if (EVP_PKEY_get_raw_private_key(pkey, reinterpret_cast<uint8_t*>(raw.data()),
                                   &size) != 1 ||
      size != raw.size()) {
    OPENSSL_cleanse(raw.data(), raw.size());
    return CryptoError("reading the raw private key");
  }
  return raw;
}

Pkey NewPublicPkey(const std::string& raw) {
  return Pkey(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const uint8_t*>(raw.data()),
      raw.size()));
}

Pkey NewPrivatePkey(const std::string& seed) {
  return Pkey(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const uint8_t*>(seed.data()),
      seed.size()));
}

// One of the PEM_read_bio_* key decoders.
using PemKeyReader = EVP_PKEY* (*)(BIO*, EVP_PKEY**, pem_password_cb*, void*);

// Decodes the key in the PEM block `label` of `pem` with `read` and checks
// that it is Ed25519. `kind` names the key in errors: "public key".
absl::StatusOr<Pkey> ReadEd25519Pem(absl::string_view pem,
                                    absl::string_view label,
                                    absl::string_view kind, PemKeyReader read) {
  ASSIGN_OR_RETURN(Bio bio, PemBio(pem, label));
  // Decoders may queue errors even when they succeed.
  absl::Cleanup clear_errors = [] { ERR_clear_error(); };
  Pkey pkey(read(bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(kind, " PEM does not decode (", DrainErrors(), ")"));
  }
  RETURN_IF_ERROR(CheckEd25519(pkey.get()));
  return pkey;
}

// Prefixes a parse error with the file it came from.
absl::Status InFile(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat("key file ", path, ": ", status.message()));
}

// Writes `contents` to a fresh temporary file beside `path` (mkstemp creates
// it with mode 0600), syncs it, then links it to `path`. Unlike rename, link
// fails if `path` exists, so an existing file is never replaced, and readers
// only ever see a complete file.
absl::Status WriteNewSecretFile(const std::string& path,
                                absl::string_view contents) {
  std::string tmp = absl::StrCat(path, ".tmp-XXXXXX");
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot create", tmp);
  absl::Cleanup remove_tmp = [&tmp] { unlink(tmp.c_str()); };
  absl::Status written = PwriteAll(fd, contents, 0, tmp);
  if (written.ok() && fsync(fd) != 0) {
    written = ErrnoToStatus(errno, "cannot fsync", tmp);
  }
  if (close(fd) != 0 && written.ok()) {
    written = ErrnoToStatus(errno, "cannot close", tmp);
  }
  RETURN_IF_ERROR(written);
  if (link(tmp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat(path,
                       " already exists; refusing to overwrite a private key "
                       "(move it away or choose another path)"));
    }
    return ErrnoToStatus(errno, "cannot link into place", path);
  }
  return SyncParentDirectory(path);
}

}  // namespace

absl::StatusOr<PublicKey> PublicKey::FromRaw(absl::string_view raw32) {
  if (raw32.size() != kEd25519PublicKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("an Ed25519 public key is ", kEd25519PublicKeyBytes,
                     " bytes, not ", raw32.size()));
  }
  return PublicKey(std::string(raw32));
}

absl::StatusOr<PublicKey> PublicKey::FromPem(absl::string_view pem) {
  ASSIGN_OR_RETURN(Pkey pkey, ReadEd25519Pem(pem, "PUBLIC KEY", "public key",
                                             &PEM_read_bio_PUBKEY));
  ASSIGN_OR_RETURN(std::string raw, RawPublic(pkey.get()));
  return PublicKey(std::move(raw));
}

std::string PublicKey::key_id() const { return DigestToHex(Sha256(raw_)); }

std::string PublicKey::short_key_id() const {
  return key_id().substr(0, kShortKeyIdChars);
}

std::string PublicKey::ToPem() const {
  Pkey pkey = NewPublicPkey(raw_);
  Bio bio(BIO_new(BIO_s_mem()));
  // Fails only when memory is exhausted or the crypto library is broken.
  CHECK(pkey != nullptr && bio != nullptr &&
        PEM_write_bio_PUBKEY(bio.get(), pkey.get()) == 1)
      << "encoding a public key: " << DrainErrors();
  return BioContents(bio.get());
}

bool PublicKey::Verify(absl::string_view message,
                       absl::string_view signature) const {
  if (signature.size() != kEd25519SignatureBytes) return false;
  Pkey pkey = NewPublicPkey(raw_);
  MdCtx ctx(EVP_MD_CTX_new());
  const bool ok =
      pkey != nullptr && ctx != nullptr &&
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) ==
          1 &&
      EVP_DigestVerify(
          ctx.get(), reinterpret_cast<const uint8_t*>(signature.data()),
          signature.size(), reinterpret_cast<const uint8_t*>(message.data()),
          message.size()) == 1;
  ERR_clear_error();
  return ok;
}

PrivateKey::~PrivateKey() { OPENSSL_cleanse(seed_.data(), seed_.size()); }

absl::StatusOr<PrivateKey> PrivateKey::Generate() {
  PkeyCtx ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY* generated = nullptr;
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_keygen(ctx.get(), &generated) != 1) {
    return CryptoError("generating an Ed25519 key");
  }
  Pkey pkey(generated);
  ASSIGN_OR_RETURN(std::string seed, RawPrivate(pkey.get()));
  ASSIGN_OR_RETURN(std::string raw, RawPublic(pkey.get()));
  return PrivateKey(std::move(seed), PublicKey(std::move(raw)));
}

absl::StatusOr<PrivateKey> PrivateKey::FromPem(absl::string_view pem) {
  if (absl::StrContains(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    return absl::InvalidArgumentError(
        "the private key is encrypted, which is not supported; decrypt it "
        "with `openssl pkey -in KEY -out PLAIN_KEY` and protect the file "
        "instead");
  }
  ASSIGN_OR_RETURN(Pkey pkey, ReadEd25519Pem(pem, "PRIVATE KEY", "private key",
                                             &PEM_read_bio_PrivateKey));
  ASSIGN_OR_RETURN(std::string seed, RawPrivate(pkey.get()));
  ASSIGN_OR_RETURN(std::string raw, RawPublic(pkey.get()));
  return PrivateKey(std::move(seed), PublicKey(std::move(raw)));
}

std::string PrivateKey::ToPem() const {
  Pkey pkey = NewPrivatePkey(seed_);
  Bio bio(BIO_new(BIO_s_mem()));
  // Fails only when memory is exhausted or the crypto library is broken.
  CHECK(pkey != nullptr && bio != nullptr &&
        PEM_write_bio_PKCS8PrivateKey(bio.get(), pkey.get(), nullptr, nullptr,
                                      0, nullptr, nullptr) == 1)
      << "encoding a private key: " << DrainErrors();
  return BioContents(bio.get());
}

absl::StatusOr<std::string> PrivateKey::Sign(absl::string_view message) const {
  Pkey pkey = NewPrivatePkey(seed_);
  MdCtx ctx(EVP_MD_CTX_new());
  std::string signature(kEd25519SignatureBytes, '\0');
  size_t size = signature.size();
  if (pkey == nullptr || ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) !=
          1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<uint8_t*>(signature.data()),
                     &size, reinterpret_cast<const uint8_t*>(message.data()),
                     message.size()) != 1 ||
      size != signature.size()) {
    return CryptoError("Ed25519 signing");
  }
  return signature;
}

absl::Status WritePrivateKeyFile(const std::string& path,
                                 const PrivateKey& key) {
  std::string pem = key.ToPem();
  absl::Status status = WriteNewSecretFile(path, pem);
  OPENSSL_cleanse(pem.data(), pem.size());
  return status;
}

absl::Status WritePublicKeyFile(const std::string& path, const PublicKey& key) {
  return WriteFileAtomically(path, key.ToPem(), 0644);
}

absl::StatusOr<PrivateKey> ReadPrivateKeyFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFile(path, kMaxKeyFileBytes));
  absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(pem);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!key.ok()) return InFile(path, key.status());
  return key;
}

absl::StatusOr<PublicKey> ReadPublicKeyFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFile(path, kMaxKeyFileBytes));
  absl::StatusOr<PublicKey> key = PublicKey::FromPem(pem);
  if (!key.ok()) return InFile(path, key.status());
  return key;
}

}  // namespace shoal
