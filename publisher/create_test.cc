#include "publisher/create.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <random>

#include "common/file_util.h"
#include "common/hex.h"
#include "common/merkle.h"
#include "common/origin_layout.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "publisher/verify.h"

namespace shoal::publisher {
namespace {

constexpr uint64_t kPiece = 64 * 1024;

class CreateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTestDir("create_test");
    input_ = root_ + "/input";
    origin_ = root_ + "/origin";
    ASSERT_TRUE(MakeDirs(input_).ok());
    key_.emplace(*PrivateKey::Generate());
    trust_.emplace(*TrustPolicy::Create({key_->public_key()}, 1));
  }

  void WriteInput(const std::string& rel, uint64_t size, uint32_t seed = 1) {
    std::string path = input_ + "/" + rel;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    std::mt19937 rng(seed);
    std::string data(size, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    ASSERT_TRUE(WriteFileAtomically(path, data, 0644, false).ok());
  }

  CreateOptions Options(const std::string& version = "1.0") {
    CreateOptions o;
    o.name = "game-server";
    o.version = version;
    o.origin_dir = origin_;
    o.inputs = {input_};
    o.keys = {*key_};
    o.piece_size = kPiece;
    o.threads = 2;
    return o;
  }

  absl::StatusOr<VerifyReport> Verify(const std::string& ref) {
    return VerifyRelease(origin_, ref, *trust_, clock_, 2);
  }

  // Path of piece `i` of the manifest's file `path` in the origin tree.
  std::string PieceObject(const Manifest& m, const std::string& path, uint32_t i) {
    for (const v1::FileEntry& f : m.body().files()) {
      if (f.path() != path) continue;
      Digest root = *DigestFromBytes(f.pieces_root());
      std::string layer = *ReadFile(origin_ + "/" + LayerObjectPath(root), 1 << 20);
      Digest hash = *DigestFromBytes(layer.substr(i * 32, 32));
      return origin_ + "/" + PieceObjectPath(hash);
    }
    ADD_FAILURE() << "no file " << path;
    return "";
  }

  FakeClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  std::string root_, input_, origin_;
  std::optional<PrivateKey> key_;
  std::optional<TrustPolicy> trust_;
};

TEST_F(CreateTest, PublishesNestedDirectoryThatVerifies) {
  WriteInput("bin/server", 3 * kPiece + 17, 1);
  WriteInput("assets/a/b/data.pak", kPiece, 2);
  WriteInput("README", 10, 3);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok()) << result.status();
  const Manifest& m = result->manifest;
  ASSERT_EQ(m.body().files_size(), 3);
  EXPECT_EQ(m.body().files(0).path(), "README");
  EXPECT_EQ(m.body().files(1).path(), "assets/a/b/data.pak");
  EXPECT_EQ(m.body().files(2).path(), "bin/server");
  EXPECT_EQ(m.body().files(2).size(), 3 * kPiece + 17);
  EXPECT_EQ(result->pieces_written, 6u);

  auto pointer = ReadFile(origin_ + "/names/game-server/1.0", 1024);
  ASSERT_TRUE(pointer.ok());
  EXPECT_EQ(*pointer, m.release_id() + "\n");
  auto report = Verify("game-server@1.0");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->pieces_checked, 6u);
  EXPECT_EQ(report->bytes_checked, 4 * kPiece + 27);
  EXPECT_TRUE(Verify(m.release_id()).ok());
}

TEST_F(CreateTest, PieceObjectsHoldTheFileBytes) {
  WriteInput("f", 2 * kPiece + 5, 7);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok()) << result.status();
  std::string original = *ReadFile(input_ + "/f", 1 << 30);
  std::string joined;
  for (uint32_t i = 0; i < 3; ++i) {
    joined += *ReadFile(PieceObject(result->manifest, "f", i), 1 << 30);
  }
  EXPECT_EQ(joined, original);
}

TEST_F(CreateTest, EmptyFileIsCarriedWithoutPiecesRoot) {
  WriteInput("empty", 0);
  WriteInput("data", 100);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok()) << result.status();
  const v1::FileEntry& empty = result->manifest.body().files(1);
  EXPECT_EQ(empty.path(), "empty");
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.pieces_root().empty());
  EXPECT_TRUE(Verify("game-server@1.0").ok());
}

TEST_F(CreateTest, KeepsExecutableMode) {
  WriteInput("run.sh", 10);
  ASSERT_EQ(chmod((input_ + "/run.sh").c_str(), 04755), 0);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->manifest.body().files(0).mode(), 0755u);
}

TEST_F(CreateTest, UnchangedPiecesAreSharedBetweenReleases) {
  WriteInput("big", 8 * kPiece, 1);
  WriteInput("small", 100, 2);
  ASSERT_TRUE(CreateRelease(Options("1.0"), clock_).ok());
  WriteInput("small", 200, 3);
  auto second = CreateRelease(Options("1.1"), clock_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->pieces_reused, 8u);
  EXPECT_EQ(second->pieces_written, 1u);
  EXPECT_TRUE(Verify("game-server@1.0").ok());
  EXPECT_TRUE(Verify("game-server@1.1").ok());
}

TEST_F(CreateTest, SequenceDefaultsToPublishTimeAndCanBeSet) {
  WriteInput("f", 1);
  auto first = CreateRelease(Options(), clock_);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->manifest.body().sequence(), 1'800'000'000'000u);
  CreateOptions o = Options("2.0");
  o.sequence = 42;
  auto second = CreateRelease(o, clock_);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->manifest.body().sequence(), 42u);
}

TEST_F(CreateTest, DurableCreateSyncsAndVerifies) {
  WriteInput("f", 2 * kPiece + 1);
  CreateOptions o = Options();
  o.durable = true;
  auto result = CreateRelease(o, clock_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(Verify("game-server@1.0").ok());
}

TEST_F(CreateTest, RefusesSymlinkNamingIt) {
  WriteInput("real", 10);
  ASSERT_EQ(symlink("real", (input_ + "/link").c_str()), 0);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("symbolic link"), std::string::npos);
  EXPECT_NE(result.status().message().find("/link"), std::string::npos);
  EXPECT_FALSE(ReadFile(origin_ + "/names/game-server/1.0", 1024).ok());
}

TEST_F(CreateTest, RefusesEmptyDirectoryNamingIt) {
  WriteInput("f", 10);
  ASSERT_TRUE(MakeDirs(input_ + "/logs").ok());
  auto result = CreateRelease(Options(), clock_);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("empty directory"), std::string::npos);
  EXPECT_NE(result.status().message().find("logs"), std::string::npos);
}

TEST_F(CreateTest, RefusesDuplicatePaths) {
  WriteInput("dir/app", 10);
  WriteInput("app", 10);
  CreateOptions o = Options();
  o.inputs = {input_ + "/dir", input_ + "/app"};
  auto result = CreateRelease(o, clock_);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("duplicate path \"app\""), std::string::npos);
}

TEST_F(CreateTest, RefusesNameThatIsNotUtf8) {
  WriteInput("ok", 10);
  std::string bad = input_ + "/bad\xff" "name";
  ASSERT_TRUE(WriteFileAtomically(bad, "x", 0644, false).ok());
  auto result = CreateRelease(Options(), clock_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("UTF-8"), std::string::npos)
      << result.status();
}

TEST_F(CreateTest, RefusesMissingInput) {
  CreateOptions o = Options();
  o.inputs = {input_ + "/nope"};
  auto result = CreateRelease(o, clock_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(result.status().message().find("nope"), std::string::npos);
}

TEST_F(CreateTest, RefusesPieceSizeNotPowerOfTwo) {
  WriteInput("f", 10);
  CreateOptions o = Options();
  o.piece_size = 3 * 16384;
  auto result = CreateRelease(o, clock_);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("power of two"), std::string::npos);
}

TEST_F(CreateTest, VerifyNamesTheFileAndPieceOfAFlippedByte) {
  WriteInput("bin/server", 3 * kPiece, 5);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok());
  std::string object = PieceObject(result->manifest, "bin/server", 1);
  std::string bytes = *ReadFile(object, 1 << 30);
  bytes[777] ^= 0x01;
  ASSERT_TRUE(WriteFileAtomically(object, bytes, 0644, false).ok());
  auto report = Verify("game-server@1.0");
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(report.status().message().find("bin/server piece 1"), std::string::npos)
      << report.status();
}

TEST_F(CreateTest, VerifyNamesAMissingPiece) {
  WriteInput("data", 2 * kPiece, 5);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(unlink(PieceObject(result->manifest, "data", 0).c_str()), 0);
  auto report = Verify("game-server@1.0");
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("data piece 0"), std::string::npos)
      << report.status();
}

TEST_F(CreateTest, VerifyRefusesEditedManifestBody) {
  WriteInput("data", 100);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok());
  std::string path = origin_ + "/" + ManifestObjectPath(result->manifest.release_id());
  v1::SignedManifest signed_manifest = result->manifest.signed_manifest();
  v1::ManifestBody body = result->manifest.body();
  body.mutable_files(0)->set_size(99);
  signed_manifest.set_body(body.SerializeAsString());
  ASSERT_TRUE(WriteFileAtomically(path, signed_manifest.SerializeAsString(), 0644, false).ok());
  auto report = Verify("game-server@1.0");
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kUnauthenticated) << report.status();
}

TEST_F(CreateTest, VerifyRefusesAddedOrRemovedFile) {
  WriteInput("a", 100, 1);
  WriteInput("b", 100, 2);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok());
  std::string path = origin_ + "/" + ManifestObjectPath(result->manifest.release_id());
  for (bool add : {false, true}) {
    v1::SignedManifest signed_manifest = result->manifest.signed_manifest();
    v1::ManifestBody body = result->manifest.body();
    if (add) {
      *body.add_files() = body.files(1);
      body.mutable_files(2)->set_path("c");
    } else {
      body.mutable_files()->RemoveLast();
    }
    signed_manifest.set_body(body.SerializeAsString());
    ASSERT_TRUE(WriteFileAtomically(path, signed_manifest.SerializeAsString(), 0644, false).ok());
    auto report = Verify(result->manifest.release_id());
    ASSERT_FALSE(report.ok()) << (add ? "added" : "removed");
    EXPECT_EQ(report.status().code(), absl::StatusCode::kUnauthenticated) << report.status();
  }
}

TEST_F(CreateTest, VerifyRefusesForeignKeyNamingIt) {
  WriteInput("data", 100);
  CreateOptions o = Options();
  PrivateKey foreign = *PrivateKey::Generate();
  o.keys = {foreign};
  ASSERT_TRUE(CreateRelease(o, clock_).ok());
  auto report = Verify("game-server@1.0");
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(report.status().message().find(foreign.public_key().key_id().substr(0, 8)),
            std::string::npos)
      << report.status();
}

TEST_F(CreateTest, VerifyNeedsThresholdOfSignatures) {
  WriteInput("data", 100);
  PrivateKey second = *PrivateKey::Generate();
  trust_.emplace(*TrustPolicy::Create({key_->public_key(), second.public_key()}, 2));
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok());
  auto report = Verify("game-server@1.0");
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kUnauthenticated);

  v1::SignedManifest cosigned = result->manifest.signed_manifest();
  ASSERT_TRUE(AddSignature(cosigned, second).ok());
  std::string path = origin_ + "/" + ManifestObjectPath(result->manifest.release_id());
  ASSERT_TRUE(WriteFileAtomically(path, cosigned.SerializeAsString(), 0644, false).ok());
  EXPECT_TRUE(Verify("game-server@1.0").ok());
}

TEST_F(CreateTest, VerifyRefusesExpiredManifest) {
  WriteInput("data", 100);
  CreateOptions o = Options();
  o.expires_in = absl::Hours(1);
  ASSERT_TRUE(CreateRelease(o, clock_).ok());
  EXPECT_TRUE(Verify("game-server@1.0").ok());
  clock_.Advance(absl::Hours(2));
  auto report = Verify("game-server@1.0");
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition) << report.status();
}

TEST_F(CreateTest, VerifyRefusesTamperedLayer) {
  WriteInput("data", 4 * kPiece, 9);
  auto result = CreateRelease(Options(), clock_);
  ASSERT_TRUE(result.ok());
  Digest root = *DigestFromBytes(result->manifest.body().files(0).pieces_root());
  std::string path = origin_ + "/" + LayerObjectPath(root);
  std::string layer = *ReadFile(path, 1 << 20);
  layer[40] ^= 0x80;
  ASSERT_TRUE(WriteFileAtomically(path, layer, 0644, false).ok());
  auto report = Verify("game-server@1.0");
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("does not prove into the signed pieces root"),
            std::string::npos)
      << report.status();
}

TEST_F(CreateTest, UnknownReleaseIsNotFound) {
  auto report = Verify("game-server@9.9");
  EXPECT_EQ(report.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace shoal::publisher
