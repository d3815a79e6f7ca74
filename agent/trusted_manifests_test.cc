#include "agent/trusted_manifests.h"

#include <stdlib.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "agent/identity.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

std::string TempDir() {
  std::string tmpl = absl::StrCat(::testing::TempDir(), "/trusted.XXXXXX");
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

Manifest Make(const PrivateKey& key, const std::string& version, uint64_t sequence) {
  v1::ManifestBody body;
  body.set_format(kManifestFormat);
  body.set_name("app");
  body.set_version(version);
  body.set_sequence(sequence);
  body.set_created_unix_ms(1);
  body.set_expires_unix_ms(int64_t{1} << 50);
  body.set_piece_size(1 << 20);
  auto signed_manifest = SignManifest(body, {key});
  return *Manifest::ParseUnverified(signed_manifest->SerializeAsString());
}

TEST(TrustedManifestsTest, RefusesLowerSequenceOfSameReleaseAcrossRestarts) {
  std::string dir = TempDir();
  PrivateKey key = *PrivateKey::Generate();
  {
    TrustedManifests trusted(dir);
    ASSERT_TRUE(trusted.CheckAndRecord(Make(key, "1.0", 20)).ok());
  }
  TrustedManifests reopened(dir);
  absl::Status replay = reopened.CheckAndRecord(Make(key, "1.0", 10));
  EXPECT_EQ(replay.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(replay.message().find("replayed manifest: app@1.0 sequence 10"), std::string::npos)
      << replay;
}

TEST(TrustedManifestsTest, AcceptsSameOrHigherSequenceAndOtherVersions) {
  TrustedManifests trusted(TempDir());
  PrivateKey key = *PrivateKey::Generate();
  ASSERT_TRUE(trusted.CheckAndRecord(Make(key, "1.0", 20)).ok());
  EXPECT_TRUE(trusted.CheckAndRecord(Make(key, "1.0", 20)).ok());
  EXPECT_TRUE(trusted.CheckAndRecord(Make(key, "1.0", 30)).ok());
  EXPECT_FALSE(trusted.CheckAndRecord(Make(key, "1.0", 25)).ok());
  EXPECT_TRUE(trusted.CheckAndRecord(Make(key, "0.9", 1)).ok());
}

TEST(IdentityTest, PeerIdIsMadeOnceAndKept) {
  std::string dir = TempDir();
  auto first = LoadOrCreatePeerId(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->size(), 32u);
  auto again = LoadOrCreatePeerId(dir);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  EXPECT_NE(*LoadOrCreatePeerId(TempDir()), *first);
}

TEST(IdentityTest, RefusesACorruptPeerIdFile) {
  std::string dir = TempDir();
  ASSERT_TRUE(WriteFileAtomically(dir + "/peer_id", "not-an-id\n", 0644).ok());
  EXPECT_EQ(LoadOrCreatePeerId(dir).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace shoal::agent
