#include "common/manifest.h"

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/ed25519.h"
#include "common/sha256.h"
#include "common/trust.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shoal/v1/manifest.pb.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

// 2024-01-01T00:00:00Z and 2024-01-31T00:00:00Z.
constexpr int64_t kCreatedMs = 1704067200000;
constexpr int64_t kExpiresMs = 1706659200000;
const absl::Time kNow = absl::FromUnixMillis(kCreatedMs) + absl::Hours(1);

v1::FileEntry File(const std::string& path, uint64_t size) {
  v1::FileEntry file;
  file.set_path(path);
  file.set_size(size);
  file.set_mode(0644);
  if (size > 0) file.set_pieces_root(std::string(DigestBytes(Sha256(path))));
  return file;
}

v1::ManifestBody ValidBody() {
  v1::ManifestBody body;
  body.set_format(kManifestFormat);
  body.set_name("game-server");
  body.set_version("1.4.2");
  body.set_sequence(7);
  body.set_created_unix_ms(kCreatedMs);
  body.set_expires_unix_ms(kExpiresMs);
  body.set_piece_size(4 << 20);
  *body.add_files() = File("bin/server", 1000);
  *body.add_files() = File("data/a.pak", 5000000);
  *body.add_files() = File("empty", 0);
  return body;
}

class ManifestTest : public testing::Test {
 protected:
  ManifestTest()
      : a_(PrivateKey::Generate().value()),
        b_(PrivateKey::Generate().value()),
        c_(PrivateKey::Generate().value()),
        foreign_(PrivateKey::Generate().value()) {}

  TrustPolicy Trust(uint32_t threshold) const {
    return TrustPolicy::Create(
               {a_.public_key(), b_.public_key(), c_.public_key()}, threshold)
        .value();
  }

  static std::string Sign(const v1::ManifestBody& body,
                          std::vector<PrivateKey> keys) {
    return SignManifest(body, keys).value().SerializeAsString();
  }

  PrivateKey a_, b_, c_, foreign_;
};

TEST_F(ManifestTest, SignedManifestVerifies) {
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(Sign(ValidBody(), {a_}), Trust(1), kNow);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->display_name(), "game-server@1.4.2");
  EXPECT_EQ(manifest->body().files_size(), 3);
  EXPECT_EQ(manifest->body().sequence(), 7u);
  EXPECT_EQ(manifest->total_size(), 5001000u);
  EXPECT_EQ(manifest->created(), absl::FromUnixMillis(kCreatedMs));
  EXPECT_EQ(manifest->expires(), absl::FromUnixMillis(kExpiresMs));
}

TEST_F(ManifestTest, ReleaseIdIsSha256OfBodyBytes) {
  v1::SignedManifest signed_manifest = SignManifest(ValidBody(), {a_}).value();
  std::string expected = DigestToHex(Sha256(signed_manifest.body()));
  EXPECT_EQ(ReleaseIdOf(signed_manifest), expected);
  Manifest manifest =
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(1), kNow)
          .value();
  EXPECT_EQ(manifest.release_id(), expected);
}

TEST_F(ManifestTest, SignatureCoversContextAndBodyBytes) {
  v1::SignedManifest signed_manifest = SignManifest(ValidBody(), {a_}).value();
  const std::string& signature = signed_manifest.signatures(0).signature();
  EXPECT_EQ(signed_manifest.signatures(0).key_id(), a_.public_key().key_id());
  EXPECT_TRUE(a_.public_key().Verify(
      absl::StrCat(kManifestSignatureContext, signed_manifest.body()),
      signature));
  EXPECT_FALSE(a_.public_key().Verify(signed_manifest.body(), signature));
}

TEST_F(ManifestTest, SigningTwiceGivesIdenticalBytes) {
  EXPECT_EQ(Sign(ValidBody(), {a_, b_}), Sign(ValidBody(), {a_, b_}));
}

TEST_F(ManifestTest, RefusesTamperedBodyByte) {
  v1::SignedManifest signed_manifest = SignManifest(ValidBody(), {a_}).value();
  std::string* body = signed_manifest.mutable_body();
  (*body)[body->size() / 2] ^= 0x01;
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(1), kNow);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(
      std::string(manifest.status().message()),
      HasSubstr("bad signature by key " + a_.public_key().short_key_id()));
}

TEST_F(ManifestTest, RefusesEverySingleBitFlip) {
  const std::string bytes = Sign(ValidBody(), {a_});
  const TrustPolicy trust = Trust(1);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit : {0, 7}) {
      std::string flipped = bytes;
      flipped[i] ^= static_cast<char>(1 << bit);
      EXPECT_FALSE(Manifest::Verify(flipped, trust, kNow).ok())
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST_F(ManifestTest, RefusesFlippedSignatureBit) {
  v1::SignedManifest signed_manifest = SignManifest(ValidBody(), {a_}).value();
  (*signed_manifest.mutable_signatures(0)->mutable_signature())[10] ^= 0x04;
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(1), kNow);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("0 of 1 required signatures; bad signature by key " +
                        a_.public_key().short_key_id()));
}

TEST_F(ManifestTest, RefusesForeignKeyNamingItsKeyId) {
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(Sign(ValidBody(), {foreign_}), Trust(1), kNow);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("manifest signed by an untrusted key " +
                        foreign_.public_key().short_key_id()));
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr(a_.public_key().short_key_id()));
}

TEST_F(ManifestTest, RefusesUnsignedManifest) {
  v1::SignedManifest signed_manifest = SignManifest(ValidBody(), {a_}).value();
  signed_manifest.clear_signatures();
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(1), kNow);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("no signatures"));
}

TEST_F(ManifestTest, ThresholdTwoRefusesOneSignature) {
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(Sign(ValidBody(), {a_}), Trust(2), kNow);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("1 of 2 required signatures"));
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("trusted: 2 of 3 keys"));
}

TEST_F(ManifestTest, ThresholdTwoAcceptsCoSignature) {
  v1::SignedManifest signed_manifest = SignManifest(ValidBody(), {a_}).value();
  const std::string body_before = signed_manifest.body();
  ASSERT_TRUE(AddSignature(signed_manifest, c_).ok());
  EXPECT_EQ(signed_manifest.body(), body_before);
  EXPECT_TRUE(
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(2), kNow)
          .ok());
}

TEST_F(ManifestTest, AddSignatureRefusesKeyThatAlreadySigned) {
  v1::SignedManifest signed_manifest = SignManifest(ValidBody(), {a_}).value();
  absl::Status status = AddSignature(signed_manifest, a_);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(signed_manifest.signatures_size(), 1);
}

TEST_F(ManifestTest, AddSignatureRefusesUndecodableBody) {
  v1::SignedManifest signed_manifest;
  signed_manifest.set_body("\xff\xff\xff");
  EXPECT_EQ(AddSignature(signed_manifest, a_).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(signed_manifest.signatures_size(), 0);
}

TEST_F(ManifestTest, SameKeySigningTwiceCountsOnce) {
  v1::SignedManifest signed_manifest = SignManifest(ValidBody(), {a_}).value();
  *signed_manifest.add_signatures() = signed_manifest.signatures(0);
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(2), kNow);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("1 of 2 required signatures"));
}

TEST_F(ManifestTest, IgnoresUntrustedAndBadSignaturesOnceThresholdIsMet) {
  v1::SignedManifest signed_manifest =
      SignManifest(ValidBody(), {foreign_, a_, c_, b_}).value();
  (*signed_manifest.mutable_signatures(3)->mutable_signature())[0] ^= 0x01;
  EXPECT_TRUE(
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(2), kNow)
          .ok());
}

TEST_F(ManifestTest, BelowThresholdErrorListsBadAndUntrustedSigners) {
  v1::SignedManifest signed_manifest =
      SignManifest(ValidBody(), {a_, b_, foreign_}).value();
  (*signed_manifest.mutable_signatures(1)->mutable_signature())[0] ^= 0x01;
  absl::Status status =
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(2), kNow)
          .status();
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("1 of 2 required signatures"));
  EXPECT_THAT(
      std::string(status.message()),
      HasSubstr("bad signature by key " + b_.public_key().short_key_id()));
  EXPECT_THAT(
      std::string(status.message()),
      HasSubstr("untrusted key " + foreign_.public_key().short_key_id()));
}

TEST_F(ManifestTest, SignManifestRefusesSameKeyTwice) {
  EXPECT_EQ(SignManifest(ValidBody(), {a_, a_}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ManifestTest, SignManifestRefusesNoKeys) {
  EXPECT_EQ(SignManifest(ValidBody(), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ManifestTest, RefusesExpiredManifestGivingExpiryTime) {
  FakeClock clock(absl::FromUnixMillis(kExpiresMs));
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(Sign(ValidBody(), {a_}), Trust(1), clock.Now());
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("game-server@1.4.2"));
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("expired at 2024-01-31T00:00:00Z"));
}

TEST_F(ManifestTest, AcceptsManifestJustBeforeExpiry) {
  FakeClock clock(absl::FromUnixMillis(kExpiresMs) - absl::Milliseconds(1));
  EXPECT_TRUE(
      Manifest::Verify(Sign(ValidBody(), {a_}), Trust(1), clock.Now()).ok());
}

TEST_F(ManifestTest, RefusesUndecodableBytes) {
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify("\x0a\xff\xff\xff\x0f", Trust(1), kNow);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ManifestTest, RefusesInvalidBodyEvenWhenSignedByTrustedKey) {
  v1::ManifestBody body = ValidBody();
  body.mutable_files(0)->set_path("../etc/passwd");
  v1::SignedManifest signed_manifest;
  signed_manifest.set_body(body.SerializeAsString());
  ASSERT_EQ(AddSignature(signed_manifest, a_).code(),
            absl::StatusCode::kInvalidArgument);
  // Sign the bytes directly, as a publisher without validation would.
  v1::Signature* signature = signed_manifest.add_signatures();
  signature->set_key_id(a_.public_key().key_id());
  signature->set_signature(
      a_.Sign(absl::StrCat(kManifestSignatureContext, signed_manifest.body()))
          .value());
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(signed_manifest.SerializeAsString(), Trust(1), kNow);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(manifest.status().message()),
              HasSubstr("\"..\" segment"));
}

TEST_F(ManifestTest, ParseUnverifiedSkipsSignaturesAndExpiry) {
  v1::SignedManifest signed_manifest =
      SignManifest(ValidBody(), {foreign_}).value();
  absl::StatusOr<Manifest> manifest =
      Manifest::ParseUnverified(signed_manifest.SerializeAsString());
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->release_id(), ReleaseIdOf(signed_manifest));
}

TEST_F(ManifestTest, CopiesShareTheParse) {
  Manifest manifest =
      Manifest::Verify(Sign(ValidBody(), {a_}), Trust(1), kNow).value();
  Manifest copy = manifest;
  EXPECT_EQ(&copy.body(), &manifest.body());
}

class ReplayTest : public ManifestTest {
 protected:
  Manifest WithSequence(uint64_t sequence, const std::string& version) {
    v1::ManifestBody body = ValidBody();
    body.set_sequence(sequence);
    body.set_version(version);
    return Manifest::Verify(Sign(body, {a_}), Trust(1), kNow).value();
  }
};

TEST_F(ReplayTest, RefusesLowerSequenceOfSameRelease) {
  absl::Status status =
      CheckNotReplayed(WithSequence(5, "1.0"), WithSequence(4, "1.0"));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            "replayed manifest: game-server@1.0 sequence 4 is older than "
            "trusted sequence 5");
}

TEST_F(ReplayTest, AcceptsSameOrHigherSequence) {
  EXPECT_TRUE(
      CheckNotReplayed(WithSequence(5, "1.0"), WithSequence(5, "1.0")).ok());
  EXPECT_TRUE(
      CheckNotReplayed(WithSequence(5, "1.0"), WithSequence(6, "1.0")).ok());
}

TEST_F(ReplayTest, AcceptsLowerSequenceOfOtherRelease) {
  EXPECT_TRUE(
      CheckNotReplayed(WithSequence(5, "1.0"), WithSequence(1, "0.9")).ok());
}

// One way to break a body, the message fragment that must explain it, and a
// name for the test.
struct InvalidBodyCase {
  std::string name;
  std::function<void(v1::ManifestBody&)> mutate;
  std::string reason;
};

void PrintTo(const InvalidBodyCase& c, std::ostream* os) { *os << c.name; }

void SetPaths(v1::ManifestBody& body, std::vector<std::string> paths) {
  body.clear_files();
  for (const std::string& path : paths) *body.add_files() = File(path, 10);
}

std::vector<InvalidBodyCase> InvalidBodyCases() {
  using B = v1::ManifestBody;
  const uint64_t kHugeFile = ((uint64_t{1} << 32) - 1) << 30;
  return {
      {"UnknownFormat", [](B& b) { b.set_format(2); }, "format 2"},
      {"BadName", [](B& b) { b.set_name("my app"); }, "release name"},
      {"EmptyVersion", [](B& b) { b.set_version(""); }, "release version"},
      {"PieceSizeNotPowerOfTwo", [](B& b) { b.set_piece_size(3 * 16384); },
       "piece size 49152"},
      {"PieceSizeBelowBlock", [](B& b) { b.set_piece_size(8192); },
       "piece size 8192"},
      {"PieceSizeAboveLimit", [](B& b) { b.set_piece_size(uint64_t{1} << 31); },
       "piece size"},
      {"ExpiryNotAfterCreation",
       [](B& b) { b.set_expires_unix_ms(b.created_unix_ms()); },
       "is not after creation"},
      {"UnsortedFiles",
       [](B& b) {
         SetPaths(b, {"b", "a"});
       },
       "sorted by path, but \"a\" comes after \"b\""},
      {"DuplicatePath",
       [](B& b) {
         SetPaths(b, {"a", "a"});
       },
       "\"a\" is listed twice"},
      {"ParentSegment", [](B& b) { SetPaths(b, {"../x"}); }, "\"..\" segment"},
      {"AbsolutePath", [](B& b) { SetPaths(b, {"/abs"}); }, "absolute"},
      {"EmptySegment", [](B& b) { SetPaths(b, {"a//b"}); }, "empty segment"},
      {"DotSegment", [](B& b) { SetPaths(b, {"a/./b"}); }, "\".\" segment"},
      {"InvalidUtf8", [](B& b) { SetPaths(b, {"\xff"}); }, "not valid UTF-8"},
      {"OverlongUtf8", [](B& b) { SetPaths(b, {"\xc0\xaf"}); },
       "not valid UTF-8"},
      {"EmptyPath", [](B& b) { SetPaths(b, {""}); }, "is empty"},
      {"FileIsAlsoDirectory",
       [](B& b) {
         SetPaths(b, {"a", "a-x", "a/b"});
       },
       "\"a\" is a file, but \"a/b\" needs it to be a directory"},
      {"ShortPiecesRoot",
       [](B& b) { b.mutable_files(0)->set_pieces_root("short"); },
       "pieces_root is 5 bytes"},
      {"PiecesRootOnEmptyFile",
       [](B& b) { b.mutable_files(2)->set_pieces_root(std::string(32, 'x')); },
       "must be empty for an empty file"},
      {"FileTypeBitsInMode",
       [](B& b) { b.mutable_files(0)->set_mode(0100644); }, "mode 0100644"},
      {"TooManyPieces",
       [](B& b) {
         b.set_piece_size(16384);
         b.mutable_files(1)->set_size(uint64_t{1} << 46);
       },
       "data/a.pak"},
      {"TotalSizeOverflow",
       [kHugeFile](B& b) {
         b.set_piece_size(uint64_t{1} << 30);
         for (int i = 0; i < 3; ++i) b.mutable_files(i)->set_size(kHugeFile);
         b.mutable_files(2)->set_pieces_root(std::string(32, 'x'));
       },
       "total size"},
  };
}

class InvalidBodyTest : public testing::TestWithParam<InvalidBodyCase> {};

TEST_P(InvalidBodyTest, IsRefusedWithReason) {
  v1::ManifestBody body = ValidBody();
  GetParam().mutate(body);
  absl::Status status = ValidateManifestBody(body);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(GetParam().reason));
  std::vector<PrivateKey> keys = {PrivateKey::Generate().value()};
  EXPECT_EQ(SignManifest(body, keys).status().code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(
    ValidateManifestBody, InvalidBodyTest,
    testing::ValuesIn(InvalidBodyCases()),
    [](const testing::TestParamInfo<InvalidBodyCase>& info) {
      return info.param.name;
    });

TEST(ValidateManifestBodyTest, AcceptsValidBody) {
  EXPECT_TRUE(ValidateManifestBody(ValidBody()).ok());
}

TEST(ValidateManifestBodyTest, AcceptsEmptyFileList) {
  v1::ManifestBody body = ValidBody();
  body.clear_files();
  EXPECT_TRUE(ValidateManifestBody(body).ok());
}

}  // namespace
}  // namespace shoal
