#include "common/ed25519.h"

#include <dirent.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/hex.h"
#include "common/sha256.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// RFC 8032, section 7.1, TEST 1: a known key and its signature of the empty
// message.
constexpr absl::string_view kRfcSeedHex =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr absl::string_view kRfcPublicHex =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr absl::string_view kRfcSignatureHex =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

// The fixed DER prefixes of RFC 8410 key encodings for Ed25519 (OID
// 1.3.101.112): PKCS#8 OneAsymmetricKey and SubjectPublicKeyInfo.
constexpr absl::string_view kPkcs8PrefixHex =
    "302e020100300506032b657004220420";
constexpr absl::string_view kSpkiPrefixHex = "302a300506032b6570032100";

std::string Unhex(absl::string_view hex) { return HexDecode(hex).value(); }

// A PEM block as OpenSSL writes it: base64 in lines of 64 characters.
std::string Pem(absl::string_view label, absl::string_view der) {
  std::string b64 = absl::Base64Escape(der);
  std::string out = absl::StrCat("-----BEGIN ", label, "-----\n");
  for (size_t i = 0; i < b64.size(); i += 64) {
    absl::StrAppend(&out, b64.substr(i, 64), "\n");
  }
  absl::StrAppend(&out, "-----END ", label, "-----\n");
  return out;
}

std::string RfcPrivatePem() {
  return Pem("PRIVATE KEY", Unhex(absl::StrCat(kPkcs8PrefixHex, kRfcSeedHex)));
}

std::string RfcPublicPem() {
  return Pem("PUBLIC KEY", Unhex(absl::StrCat(kSpkiPrefixHex, kRfcPublicHex)));
}

PrivateKey NewKey() { return PrivateKey::Generate().value(); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  return names;
}

TEST(Ed25519Test, SignatureVerifiesWithSigningKey) {
  PrivateKey key = NewKey();
  std::string signature = key.Sign("release bytes").value();
  EXPECT_EQ(signature.size(), kEd25519SignatureBytes);
  EXPECT_TRUE(key.public_key().Verify("release bytes", signature));
}

TEST(Ed25519Test, SignatureDoesNotVerifyOtherMessage) {
  PrivateKey key = NewKey();
  std::string signature = key.Sign("release bytes").value();
  EXPECT_FALSE(key.public_key().Verify("release bytez", signature));
}

TEST(Ed25519Test, SignatureDoesNotVerifyWithOtherKey) {
  std::string signature = NewKey().Sign("release bytes").value();
  EXPECT_FALSE(NewKey().public_key().Verify("release bytes", signature));
}

TEST(Ed25519Test, FlippedSignatureBitDoesNotVerify) {
  PrivateKey key = NewKey();
  std::string signature = key.Sign("release bytes").value();
  for (size_t bit : {0, 100, 255, 256, 300, 511}) {
    std::string flipped = signature;
    flipped[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_FALSE(key.public_key().Verify("release bytes", flipped)) << bit;
  }
}

TEST(Ed25519Test, WrongLengthSignatureDoesNotVerify) {
  PrivateKey key = NewKey();
  std::string signature = key.Sign("m").value();
  EXPECT_FALSE(key.public_key().Verify("m", signature.substr(0, 63)));
  EXPECT_FALSE(key.public_key().Verify("m", signature + "x"));
  EXPECT_FALSE(key.public_key().Verify("m", ""));
}

TEST(Ed25519Test, SignsRfc8032TestVector) {
  PrivateKey key = PrivateKey::FromPem(RfcPrivatePem()).value();
  EXPECT_EQ(HexEncode(key.public_key().raw()), kRfcPublicHex);
  EXPECT_EQ(HexEncode(key.Sign("").value()), kRfcSignatureHex);
  EXPECT_TRUE(key.public_key().Verify("", Unhex(kRfcSignatureHex)));
}

TEST(Ed25519Test, GeneratedKeysDiffer) {
  EXPECT_NE(NewKey().public_key(), NewKey().public_key());
}

TEST(Ed25519Test, KeyIdIsSha256OfRawKey) {
  PublicKey key = NewKey().public_key();
  EXPECT_EQ(key.key_id(), DigestToHex(Sha256(key.raw())));
  EXPECT_EQ(key.key_id().size(), 64u);
  EXPECT_EQ(key.short_key_id(), key.key_id().substr(0, kShortKeyIdChars));
}

TEST(Ed25519Test, FromRawRoundTripsAndRejectsWrongLength) {
  PublicKey key = NewKey().public_key();
  EXPECT_EQ(PublicKey::FromRaw(key.raw()).value(), key);
  absl::StatusOr<PublicKey> short_key = PublicKey::FromRaw("0123456789");
  EXPECT_EQ(short_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(short_key.status().message()),
              HasSubstr("32 bytes, not 10"));
}

TEST(Ed25519Test, PrivateKeyPemRoundTrip) {
  PrivateKey key = NewKey();
  std::string pem = key.ToPem();
  EXPECT_THAT(pem, StartsWith("-----BEGIN PRIVATE KEY-----\n"));
  PrivateKey parsed = PrivateKey::FromPem(pem).value();
  EXPECT_EQ(parsed.public_key(), key.public_key());
  EXPECT_TRUE(key.public_key().Verify("m", parsed.Sign("m").value()));
}

TEST(Ed25519Test, PublicKeyPemRoundTrip) {
  PublicKey key = NewKey().public_key();
  std::string pem = key.ToPem();
  EXPECT_THAT(pem, StartsWith("-----BEGIN PUBLIC KEY-----\n"));
  EXPECT_EQ(PublicKey::FromPem(pem).value(), key);
}

TEST(Ed25519Test, WritesStandardRfc8410Encodings) {
  PrivateKey key = PrivateKey::FromPem(RfcPrivatePem()).value();
  EXPECT_EQ(key.ToPem(), RfcPrivatePem());
  EXPECT_EQ(key.public_key().ToPem(), RfcPublicPem());
}

TEST(Ed25519Test, ReadsStandardPublicKeyPem) {
  PublicKey key = PublicKey::FromPem(RfcPublicPem()).value();
  EXPECT_EQ(HexEncode(key.raw()), kRfcPublicHex);
}

TEST(Ed25519Test, PrivateKeyFromPemRejectsPublicKey) {
  absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(RfcPublicPem());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(key.status().message()),
              HasSubstr("BEGIN PRIVATE KEY"));
}

TEST(Ed25519Test, PublicKeyFromPemRejectsPrivateKey) {
  absl::StatusOr<PublicKey> key = PublicKey::FromPem(RfcPrivatePem());
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(key.status().message()),
              HasSubstr("BEGIN PUBLIC KEY"));
}

TEST(Ed25519Test, FromPemRejectsCorruptBase64) {
  std::string pem = RfcPrivatePem();
  pem.replace(pem.find("MC4C"), 4, "!!!!");
  EXPECT_EQ(PrivateKey::FromPem(pem).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Ed25519Test, FromPemRejectsOversizedText) {
  std::string pem = RfcPrivatePem() + std::string(100 * 1024, '\n');
  absl::StatusOr<PrivateKey> key = PrivateKey::FromPem(pem);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(key.status().message()), HasSubstr("too large"));
}

TEST(Ed25519Test, FromPemRejectsEncryptedKeyWithAdvice) {
  absl::StatusOr<PrivateKey> key =
      PrivateKey::FromPem(Pem("ENCRYPTED PRIVATE KEY", "whatever"));
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(key.status().message()), HasSubstr("encrypted"));
}

TEST(Ed25519Test, FromPemRejectsOtherKeyTypes) {
  // An X25519 (OID 1.3.101.110) key: same shape, not a signing key.
  std::string x25519 =
      Pem("PRIVATE KEY",
          Unhex(absl::StrCat("302e020100300506032b656e04220420", kRfcSeedHex)));
  EXPECT_EQ(PrivateKey::FromPem(x25519).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Ed25519FileTest, PrivateKeyFileHasMode0600) {
  std::string path = MakeTestDir("ed25519_test") + "/publisher.key";
  ASSERT_TRUE(WritePrivateKeyFile(path, NewKey()).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600);
}

TEST(Ed25519FileTest, PrivateKeyFileRoundTrip) {
  std::string path = MakeTestDir("ed25519_test") + "/publisher.key";
  PrivateKey key = NewKey();
  ASSERT_TRUE(WritePrivateKeyFile(path, key).ok());
  EXPECT_EQ(ReadAll(path), key.ToPem());
  EXPECT_EQ(ReadPrivateKeyFile(path).value().public_key(), key.public_key());
}

TEST(Ed25519FileTest, PrivateKeyFileRefusesToOverwrite) {
  std::string dir = MakeTestDir("ed25519_test");
  std::string path = dir + "/publisher.key";
  PrivateKey first = NewKey();
  ASSERT_TRUE(WritePrivateKeyFile(path, first).ok());
  absl::Status second = WritePrivateKeyFile(path, NewKey());
  EXPECT_EQ(second.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(second.message()), HasSubstr(path));
  EXPECT_EQ(ReadAll(path), first.ToPem());
  EXPECT_THAT(ListDir(dir), testing::ElementsAre("publisher.key"));
}

TEST(Ed25519FileTest, PublicKeyFileRoundTrip) {
  std::string path = MakeTestDir("ed25519_test") + "/publisher.pub";
  PublicKey key = NewKey().public_key();
  ASSERT_TRUE(WritePublicKeyFile(path, key).ok());
  EXPECT_EQ(ReadPublicKeyFile(path).value(), key);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0600, 0600);
}

TEST(Ed25519FileTest, MissingKeyFileIsNotFoundNamingPath) {
  std::string path = MakeTestDir("ed25519_test") + "/absent.key";
  absl::StatusOr<PrivateKey> key = ReadPrivateKeyFile(path);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(key.status().message()), HasSubstr(path));
}

TEST(Ed25519FileTest, WrongKindOfKeyFileNamesPath) {
  std::string path = MakeTestDir("ed25519_test") + "/publisher.pub";
  ASSERT_TRUE(WritePublicKeyFile(path, NewKey().public_key()).ok());
  absl::StatusOr<PrivateKey> key = ReadPrivateKeyFile(path);
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(key.status().message()), HasSubstr(path));
}

}  // namespace
}  // namespace shoal
