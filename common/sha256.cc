#include "common/sha256.h"

#include <openssl/evp.h>

#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hex.h"
#include "glog/logging.h"

namespace shoal {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

MdCtxPtr NewMdCtx() {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  CHECK(ctx != nullptr) << "out of memory allocating a digest context";
  return ctx;
}

}  // namespace

// `fresh` is initialised for SHA-256 once and never updated; restarting
// `current` by copying it is much cheaper on OpenSSL 3 than EVP_DigestInit_ex,
// which looks the algorithm up again on every call.
struct Sha256Hasher::State {
  MdCtxPtr fresh = NewMdCtx();
  MdCtxPtr current = NewMdCtx();
};

Sha256Hasher::Sha256Hasher() : state_(std::make_unique<State>()) {
  CHECK_EQ(EVP_DigestInit_ex(state_->fresh.get(), EVP_sha256(), nullptr), 1);
  CHECK_EQ(EVP_MD_CTX_copy_ex(state_->current.get(), state_->fresh.get()), 1);
}

Sha256Hasher::~Sha256Hasher() = default;
Sha256Hasher::Sha256Hasher(Sha256Hasher&& other) noexcept = default;
Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&& other) noexcept = default;

void Sha256Hasher::Update(absl::string_view data) {
  if (data.empty()) return;
  CHECK_EQ(EVP_DigestUpdate(state_->current.get(), data.data(), data.size()),
           1);
}

Digest Sha256Hasher::Finish() {
  Digest digest;
  unsigned int length = 0;
  CHECK_EQ(EVP_DigestFinal_ex(state_->current.get(), digest.data(), &length),
           1);
  CHECK_EQ(length, kDigestSize);
  CHECK_EQ(EVP_MD_CTX_copy_ex(state_->current.get(), state_->fresh.get()), 1);
  return digest;
}

Digest Sha256(absl::string_view data) {
  Digest digest;
  unsigned int length = 0;
  CHECK_EQ(EVP_Digest(data.data(), data.size(), digest.data(), &length,
                      EVP_sha256(), nullptr),
           1);
  CHECK_EQ(length, kDigestSize);
  return digest;
}

Digest Sha256Pair(const Digest& left, const Digest& right) {
  char both[2 * kDigestSize];
  std::memcpy(both, left.data(), kDigestSize);
  std::memcpy(both + kDigestSize, right.data(), kDigestSize);
  return Sha256(absl::string_view(both, sizeof(both)));
}

std::string DigestToHex(const Digest& d) { return HexEncode(DigestBytes(d)); }

absl::string_view DigestBytes(const Digest& d) {
  return absl::string_view(reinterpret_cast<const char*>(d.data()), d.size());
}

absl::StatusOr<Digest> DigestFromBytes(absl::string_view raw) {
  if (raw.size() != kDigestSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a SHA-256 digest is ", kDigestSize, " bytes, got ", raw.size()));
  }
  Digest digest;
  std::memcpy(digest.data(), raw.data(), kDigestSize);
  return digest;
}

absl::StatusOr<Digest> DigestFromHex(absl::string_view hex) {
  if (hex.size() != 2 * kDigestSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("a hex SHA-256 digest is ", 2 * kDigestSize,
                     " digits, got ", hex.size()));
  }
  absl::StatusOr<std::string> raw = HexDecode(hex);
  if (!raw.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad hex SHA-256 digest: ", raw.status().message()));
  }
  return DigestFromBytes(*raw);
}

}  // namespace shoal
