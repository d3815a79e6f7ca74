#include "common/release_pieces.h"

#include <string>

#include "common/ed25519.h"
#include "common/manifest.h"
#include "common/sha256.h"
#include "common/trust.h"
#include "gtest/gtest.h"
#include "shoal/v1/manifest.pb.h"

namespace shoal {
namespace {

constexpr int64_t kCreatedMs = 1704067200000;  // 2024-01-01T00:00:00Z
constexpr uint64_t kPiece = 64 * 1024;

v1::FileEntry File(const std::string& path, uint64_t size) {
  v1::FileEntry file;
  file.set_path(path);
  file.set_size(size);
  file.set_mode(0644);
  if (size > 0) file.set_pieces_root(std::string(DigestBytes(Sha256(path))));
  return file;
}

// Files of 3, 0, 2 (the last short) and 0 pieces.
Manifest MakeManifest() {
  v1::ManifestBody body;
  body.set_format(kManifestFormat);
  body.set_name("game-server");
  body.set_version("1.0");
  body.set_created_unix_ms(kCreatedMs);
  body.set_expires_unix_ms(kCreatedMs + 86400000);
  body.set_piece_size(kPiece);
  *body.add_files() = File("a", 3 * kPiece);
  *body.add_files() = File("b", 0);
  *body.add_files() = File("c", kPiece + 1);
  *body.add_files() = File("d", 0);
  PrivateKey key = PrivateKey::Generate().value();
  TrustPolicy trust = TrustPolicy::Create({key.public_key()}, 1).value();
  std::string bytes = SignManifest(body, {key}).value().SerializeAsString();
  return Manifest::Verify(bytes, trust, absl::FromUnixMillis(kCreatedMs))
      .value();
}

TEST(ReleasePiecesTest, TotalCountsEveryFilesPieces) {
  EXPECT_EQ(TotalPieces(MakeManifest()), 5u);
  EXPECT_EQ(ReleasePieces::Create(MakeManifest())->total_pieces(), 5u);
}

TEST(ReleasePiecesTest, NumbersFilesInManifestOrder) {
  ReleasePieces pieces = ReleasePieces::Create(MakeManifest()).value();
  EXPECT_EQ(pieces.Locate(ReleasePieceIndex(0)),
            (FilePiece{FileIndex(0), PieceIndex(0)}));
  EXPECT_EQ(pieces.Locate(ReleasePieceIndex(2)),
            (FilePiece{FileIndex(0), PieceIndex(2)}));
  EXPECT_EQ(pieces.Locate(ReleasePieceIndex(3)),
            (FilePiece{FileIndex(2), PieceIndex(0)}));
  EXPECT_EQ(pieces.Locate(ReleasePieceIndex(4)),
            (FilePiece{FileIndex(2), PieceIndex(1)}));
}

TEST(ReleasePiecesTest, ToReleaseInvertsLocate) {
  ReleasePieces pieces = ReleasePieces::Create(MakeManifest()).value();
  for (uint32_t i = 0; i < pieces.total_pieces(); ++i) {
    EXPECT_EQ(pieces.ToRelease(pieces.Locate(ReleasePieceIndex(i))),
              ReleasePieceIndex(i));
  }
}

TEST(ReleasePiecesTest, EmptyFilesStartWhereTheNextFileStarts) {
  ReleasePieces pieces = ReleasePieces::Create(MakeManifest()).value();
  EXPECT_EQ(pieces.first_piece(FileIndex(1)), ReleasePieceIndex(3));
  EXPECT_EQ(pieces.first_piece(FileIndex(3)), ReleasePieceIndex(5));
  EXPECT_EQ(pieces.geometry(FileIndex(2)).piece_length(PieceIndex(1)), 1u);
}

}  // namespace
}  // namespace shoal
