#include "common/merkle.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/sha256.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

// Pieces of two blocks keep multi-piece trees small enough to write out.
constexpr uint64_t kPiece = 2 * kBlockSize;
constexpr uint64_t kBigPiece = 4 * 1024 * 1024;
constexpr Digest kZeroLeaf = {};

// Deterministic bytes in which no two pieces or blocks are equal.
std::string FileData(uint64_t size) {
  std::string data(size, '\0');
  for (uint64_t i = 0; i < size; ++i) {
    data[i] = static_cast<char>((i * 2654435761u) >> 17);
  }
  return data;
}

FileGeometry Geometry(uint64_t file_size, uint64_t piece_size = kPiece) {
  return FileGeometry::Create(file_size, piece_size).value();
}

absl::string_view PieceData(const FileGeometry& g, absl::string_view file,
                            uint32_t i) {
  const PieceIndex index(i);
  return file.substr(g.piece_offset(index), g.piece_length(index));
}

Digest Leaf(absl::string_view file, uint64_t block) {
  return Sha256(file.substr(block * kBlockSize, kBlockSize));
}

Digest Pair(const Digest& left, const Digest& right) {
  return Sha256Pair(left, right);
}

std::vector<Digest> PieceLayer(const FileGeometry& g, absl::string_view file) {
  std::vector<Digest> layer;
  for (uint32_t i = 0; i < g.num_pieces(); ++i) {
    layer.push_back(PieceHash(g, PieceIndex(i), PieceData(g, file, i)).value());
  }
  return layer;
}

PieceTree Tree(const FileGeometry& g, absl::string_view file) {
  return PieceTree::Create(g, PieceLayer(g, file)).value();
}

// The whole-file tree spelled out: every leaf, zero leaves appended up to a
// power of two, then pairs hashed level by level.
Digest NaiveFileRoot(absl::string_view file) {
  std::vector<Digest> level;
  for (uint64_t b = 0; b * kBlockSize < file.size(); ++b) {
    level.push_back(Leaf(file, b));
  }
  while ((level.size() & (level.size() - 1)) != 0) level.push_back(kZeroLeaf);
  while (level.size() > 1) {
    std::vector<Digest> up;
    for (size_t j = 0; j < level.size(); j += 2) {
      up.push_back(Pair(level[j], level[j + 1]));
    }
    level = up;
  }
  return level[0];
}

Digest FlipBit(Digest d) {
  d[7] ^= 0x10;
  return d;
}

// --- FileGeometry ---

TEST(FileGeometryTest, RejectsPieceSizeThatIsNotAPowerOfTwo) {
  EXPECT_EQ(FileGeometry::Create(100, 3 * kBlockSize).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FileGeometry::Create(100, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FileGeometryTest, RejectsPieceSizeBelowBlockSize) {
  EXPECT_EQ(FileGeometry::Create(100, kBlockSize / 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(FileGeometry::Create(100, kBlockSize).ok());
}

TEST(FileGeometryTest, RejectsMoreThanUint32MaxPieces) {
  const uint64_t max_pieces = std::numeric_limits<uint32_t>::max();
  EXPECT_EQ(FileGeometry::Create((max_pieces + 1) * kBlockSize, kBlockSize)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const FileGeometry g = Geometry(max_pieces * kBlockSize, kBlockSize);
  EXPECT_EQ(g.num_pieces(), max_pieces);
  EXPECT_EQ(g.proof_length(), 32u);
}

TEST(FileGeometryTest, HandlesTheLargestSizesWithoutOverflow) {
  const FileGeometry g =
      Geometry(std::numeric_limits<uint64_t>::max(), uint64_t{1} << 63);
  EXPECT_EQ(g.num_pieces(), 2u);
  EXPECT_EQ(g.leaves_per_piece(), uint64_t{1} << 49);
  EXPECT_EQ(g.proof_length(), 1u);
  EXPECT_EQ(g.piece_offset(PieceIndex(1)), uint64_t{1} << 63);
  EXPECT_EQ(g.piece_length(PieceIndex(1)), (uint64_t{1} << 63) - 1);
}

TEST(FileGeometryTest, EmptyFileHasNoPieces) {
  const FileGeometry g = Geometry(0);
  EXPECT_EQ(g.num_pieces(), 0u);
  EXPECT_EQ(g.proof_length(), 0u);
  EXPECT_EQ(g.leaves_per_piece(), 1u);
}

struct Shape {
  uint64_t file_size;
  uint32_t num_pieces;
  uint64_t last_piece_length;
  uint64_t leaves_per_piece;
  uint32_t proof_length;
};

void ExpectShape(uint64_t piece_size, const Shape& want) {
  SCOPED_TRACE(testing::Message() << "file_size " << want.file_size);
  const FileGeometry g = Geometry(want.file_size, piece_size);
  EXPECT_EQ(g.file_size(), want.file_size);
  EXPECT_EQ(g.piece_size(), piece_size);
  ASSERT_EQ(g.num_pieces(), want.num_pieces);
  EXPECT_EQ(g.piece_length(PieceIndex(want.num_pieces - 1)),
            want.last_piece_length);
  EXPECT_EQ(g.leaves_per_piece(), want.leaves_per_piece);
  EXPECT_EQ(g.proof_length(), want.proof_length);
}

TEST(FileGeometryTest, SinglePieceFileSpansOnlyTheLeavesItNeeds) {
  constexpr uint64_t kP = 4 * kBlockSize;
  for (const Shape& shape : std::vector<Shape>{
           {1, 1, 1, 1, 0},
           {16383, 1, 16383, 1, 0},
           {16384, 1, 16384, 1, 0},
           {16385, 1, 16385, 2, 0},
           {3 * kBlockSize, 1, 3 * kBlockSize, 4, 0},
           {kP - 1, 1, kP - 1, 4, 0},
           {kP, 1, kP, 4, 0},
       }) {
    ExpectShape(kP, shape);
  }
}

TEST(FileGeometryTest, MultiPieceFileSpansWholePieces) {
  constexpr uint64_t kP = 4 * kBlockSize;
  for (const Shape& shape : std::vector<Shape>{
           {kP + 1, 2, 1, 4, 1},
           {2 * kP, 2, kP, 4, 1},
           {2 * kP + 16385, 3, 16385, 4, 2},
           {4 * kP, 4, kP, 4, 2},
           {4 * kP + 1, 5, 1, 4, 3},
           {8 * kP, 8, kP, 4, 3},
           {9 * kP - 1, 9, kP - 1, 4, 4},
       }) {
    ExpectShape(kP, shape);
  }
}

TEST(FileGeometryTest, PiecesTileTheFile) {
  const FileGeometry g = Geometry(5 * kPiece + 123);
  uint64_t next_offset = 0;
  for (uint32_t i = 0; i < g.num_pieces(); ++i) {
    EXPECT_EQ(g.piece_offset(PieceIndex(i)), next_offset);
    next_offset += g.piece_length(PieceIndex(i));
  }
  EXPECT_EQ(next_offset, g.file_size());
}

TEST(FileGeometryDeathTest, PieceOffsetOutOfRangeCrashes) {
  const FileGeometry g = Geometry(3 * kPiece);
  EXPECT_DEATH(g.piece_offset(PieceIndex(3)), "out of range");
}

// --- Hand-computed trees ---

TEST(MerkleRootTest, OneByteFileRootIsTheLeafHash) {
  const FileGeometry g = Geometry(1, kBigPiece);
  const Digest leaf = Sha256("x");
  EXPECT_EQ(PieceHash(g, PieceIndex(0), "x").value(), leaf);
  EXPECT_EQ(PiecesRoot(g, {leaf}).value(), leaf);
}

TEST(MerkleRootTest, OneBlockFileRootIsTheLeafHash) {
  const std::string file = FileData(kBlockSize);
  const FileGeometry g = Geometry(file.size(), kBigPiece);
  EXPECT_EQ(PieceHash(g, PieceIndex(0), file).value(), Sha256(file));
}

TEST(MerkleRootTest, TwoBlockFileRootPairsItsLeaves) {
  const std::string file = FileData(kBlockSize + 1);
  const FileGeometry g = Geometry(file.size(), kBigPiece);
  EXPECT_EQ(PieceHash(g, PieceIndex(0), file).value(),
            Pair(Leaf(file, 0), Sha256(file.substr(kBlockSize))));
}

TEST(MerkleRootTest, ThreeBlockFilePadsWithAZeroLeaf) {
  const std::string file = FileData(3 * kBlockSize - 5);
  const FileGeometry g = Geometry(file.size(), kBigPiece);
  EXPECT_EQ(
      PieceHash(g, PieceIndex(0), file).value(),
      Pair(Pair(Leaf(file, 0), Leaf(file, 1)), Pair(Leaf(file, 2), kZeroLeaf)));
}

TEST(MerkleRootTest, FiveBlockFilePadsToEightLeaves) {
  const std::string file = FileData(5 * kBlockSize);
  const FileGeometry g = Geometry(file.size(), kBigPiece);
  const Digest left = Pair(Pair(Leaf(file, 0), Leaf(file, 1)),
                           Pair(Leaf(file, 2), Leaf(file, 3)));
  const Digest right =
      Pair(Pair(Leaf(file, 4), kZeroLeaf), Pair(kZeroLeaf, kZeroLeaf));
  EXPECT_EQ(PieceHash(g, PieceIndex(0), file).value(), Pair(left, right));
}

TEST(MerkleRootTest, FullPieceHashIsTheSubtreeOfItsBlocks) {
  const std::string file = FileData(8 * kBlockSize);
  const FileGeometry g = Geometry(file.size(), 4 * kBlockSize);
  EXPECT_EQ(PieceHash(g, PieceIndex(1), PieceData(g, file, 1)).value(),
            Pair(Pair(Leaf(file, 4), Leaf(file, 5)),
                 Pair(Leaf(file, 6), Leaf(file, 7))));
}

TEST(MerkleRootTest, ShortLastPiecePadsToAFullPieceSubtree) {
  const std::string file = FileData(2 * kPiece + 1);
  const FileGeometry g = Geometry(file.size());
  EXPECT_EQ(PieceHash(g, PieceIndex(2), PieceData(g, file, 2)).value(),
            Pair(Sha256(file.substr(2 * kPiece)), kZeroLeaf));
}

TEST(MerkleRootTest, PieceLayerPaddingIsAZeroSubtreeOfOnePiece) {
  const std::string file = FileData(3 * kPiece);
  const FileGeometry g = Geometry(file.size());
  const std::vector<Digest> layer = PieceLayer(g, file);
  EXPECT_EQ(PiecesRoot(g, layer).value(),
            Pair(Pair(layer[0], layer[1]),
                 Pair(layer[2], Pair(kZeroLeaf, kZeroLeaf))));
}

TEST(MerkleRootTest, PiecesRootMatchesTheWholeFileTreeForAnyPieceSize) {
  for (uint64_t size : {uint64_t{1}, kBlockSize, 3 * kBlockSize + 7,
                        4 * kBlockSize, 9 * kBlockSize - 1, 21 * kBlockSize}) {
    const std::string file = FileData(size);
    const Digest want = NaiveFileRoot(file);
    for (uint64_t piece_size :
         {kBlockSize, 2 * kBlockSize, 8 * kBlockSize, kBigPiece}) {
      SCOPED_TRACE(testing::Message()
                   << "size " << size << " piece_size " << piece_size);
      const FileGeometry g = Geometry(size, piece_size);
      EXPECT_EQ(PiecesRoot(g, PieceLayer(g, file)).value(), want);
    }
  }
}

// --- Argument checks ---

TEST(PieceHashTest, RejectsOutOfRangeIndex) {
  const FileGeometry g = Geometry(2 * kPiece);
  EXPECT_EQ(PieceHash(g, PieceIndex(2), FileData(kPiece)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PieceHashTest, RejectsWrongDataLength) {
  const FileGeometry g = Geometry(2 * kPiece + 10);
  EXPECT_EQ(PieceHash(g, PieceIndex(0), FileData(kPiece - 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PieceHash(g, PieceIndex(2), FileData(kPiece)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PiecesRootTest, RejectsEmptyFile) {
  EXPECT_EQ(PiecesRoot(Geometry(0), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PieceTree::Create(Geometry(0), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PiecesRootTest, RejectsPieceLayerOfWrongSize) {
  const FileGeometry g = Geometry(3 * kPiece);
  const std::vector<Digest> two(2, kZeroLeaf);
  EXPECT_EQ(PiecesRoot(g, two).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PieceTree::Create(g, two).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- PieceTree and proofs ---

constexpr uint64_t kFileSizes[] = {1,          kPiece - 1,     kPiece,
                                   kPiece + 1, 2 * kPiece,     3 * kPiece + 5,
                                   4 * kPiece, 5 * kPiece - 1, 7 * kPiece + 1,
                                   8 * kPiece, 9 * kPiece,     17 * kPiece - 3};

TEST(PieceTreeTest, RootEqualsPiecesRoot) {
  for (uint64_t size : kFileSizes) {
    SCOPED_TRACE(testing::Message() << "size " << size);
    const std::string file = FileData(size);
    const FileGeometry g = Geometry(size);
    EXPECT_EQ(Tree(g, file).root(), PiecesRoot(g, PieceLayer(g, file)).value());
  }
}

TEST(PieceTreeTest, KeepsThePieceLayer) {
  const std::string file = FileData(5 * kPiece - 1);
  const FileGeometry g = Geometry(file.size());
  const std::vector<Digest> layer = PieceLayer(g, file);
  const PieceTree tree = PieceTree::Create(g, layer).value();
  for (uint32_t i = 0; i < g.num_pieces(); ++i) {
    EXPECT_EQ(tree.piece_hash(PieceIndex(i)), layer[i]);
  }
  EXPECT_EQ(tree.geometry().file_size(), file.size());
}

TEST(PieceTreeTest, EveryPieceProofVerifies) {
  for (uint64_t size : kFileSizes) {
    const std::string file = FileData(size);
    const FileGeometry g = Geometry(size);
    const PieceTree tree = Tree(g, file);
    for (uint32_t i = 0; i < g.num_pieces(); ++i) {
      SCOPED_TRACE(testing::Message() << "size " << size << " piece " << i);
      const MerkleProof proof = tree.Proof(PieceIndex(i)).value();
      EXPECT_EQ(proof.size(), g.proof_length());
      EXPECT_TRUE(VerifyPiece(g, tree.root(), PieceIndex(i),
                              PieceData(g, file, i), proof)
                      .ok());
      EXPECT_TRUE(VerifyPieceHash(g, tree.root(), PieceIndex(i),
                                  tree.piece_hash(PieceIndex(i)), proof)
                      .ok());
    }
  }
}

TEST(PieceTreeTest, SinglePieceFileHasAnEmptyProof) {
  const std::string file = FileData(kPiece);
  const FileGeometry g = Geometry(file.size());
  const PieceTree tree = Tree(g, file);
  EXPECT_TRUE(tree.Proof(PieceIndex(0)).value().empty());
  EXPECT_EQ(tree.root(), PieceHash(g, PieceIndex(0), file).value());
}

TEST(PieceTreeTest, ProofsSpellOutUnclesAndPadding) {
  const std::string file = FileData(3 * kPiece);
  const FileGeometry g = Geometry(file.size());
  const PieceTree tree = Tree(g, file);
  const std::vector<Digest> layer = PieceLayer(g, file);
  const Digest padding = Pair(kZeroLeaf, kZeroLeaf);
  EXPECT_EQ(tree.Proof(PieceIndex(0)).value(),
            (MerkleProof{layer[1], Pair(layer[2], padding)}));
  EXPECT_EQ(tree.Proof(PieceIndex(2)).value(),
            (MerkleProof{padding, Pair(layer[0], layer[1])}));
}

TEST(PieceTreeTest, ProofRejectsOutOfRangeIndex) {
  const FileGeometry g = Geometry(3 * kPiece);
  EXPECT_EQ(Tree(g, FileData(3 * kPiece)).Proof(PieceIndex(3)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Verification failures: a six-piece file with a short last piece ---

class VerifyPieceTest : public testing::Test {
 protected:
  VerifyPieceTest()
      : file_(FileData(5 * kPiece + 100)),
        g_(Geometry(file_.size())),
        tree_(Tree(g_, file_)) {}

  absl::string_view Data(uint32_t i) const { return PieceData(g_, file_, i); }
  MerkleProof ProofOf(uint32_t i) const {
    return tree_.Proof(PieceIndex(i)).value();
  }

  const std::string file_;
  const FileGeometry g_;
  const PieceTree tree_;
};

TEST_F(VerifyPieceTest, FlippedBitInDataIsDataLossNamingThePiece) {
  std::string data(Data(2));
  data[kBlockSize + 3] ^= 0x01;
  const absl::Status status =
      VerifyPiece(g_, tree_.root(), PieceIndex(2), data, ProofOf(2));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("piece 2"), absl::string_view::npos);
  EXPECT_NE(status.message().find("signed root"), absl::string_view::npos);
}

TEST_F(VerifyPieceTest, FlippedBitInAnyProofHashIsDataLoss) {
  const MerkleProof good = ProofOf(4);
  ASSERT_EQ(good.size(), 3u);
  for (size_t k = 0; k < good.size(); ++k) {
    MerkleProof bad = good;
    bad[k] = FlipBit(bad[k]);
    EXPECT_EQ(VerifyPiece(g_, tree_.root(), PieceIndex(4), Data(4), bad).code(),
              absl::StatusCode::kDataLoss)
        << "proof hash " << k;
  }
}

TEST_F(VerifyPieceTest, FlippedBitInRootIsDataLoss) {
  EXPECT_EQ(
      VerifyPiece(g_, FlipBit(tree_.root()), PieceIndex(1), Data(1), ProofOf(1))
          .code(),
      absl::StatusCode::kDataLoss);
}

TEST_F(VerifyPieceTest, FlippedBitInPieceHashIsDataLoss) {
  EXPECT_EQ(
      VerifyPieceHash(g_, tree_.root(), PieceIndex(3),
                      FlipBit(tree_.piece_hash(PieceIndex(3))), ProofOf(3))
          .code(),
      absl::StatusCode::kDataLoss);
}

TEST_F(VerifyPieceTest, DataClaimedForAnotherIndexIsDataLoss) {
  EXPECT_EQ(
      VerifyPiece(g_, tree_.root(), PieceIndex(3), Data(2), ProofOf(3)).code(),
      absl::StatusCode::kDataLoss);
  EXPECT_EQ(
      VerifyPiece(g_, tree_.root(), PieceIndex(3), Data(2), ProofOf(2)).code(),
      absl::StatusCode::kDataLoss);
}

TEST_F(VerifyPieceTest, ProofOfAnotherPieceIsDataLoss) {
  EXPECT_EQ(
      VerifyPiece(g_, tree_.root(), PieceIndex(0), Data(0), ProofOf(2)).code(),
      absl::StatusCode::kDataLoss);
}

TEST_F(VerifyPieceTest, WrongDataLengthIsInvalidArgument) {
  const std::string longer = std::string(Data(1)) + "x";
  EXPECT_EQ(
      VerifyPiece(g_, tree_.root(), PieceIndex(1), longer, ProofOf(1)).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      VerifyPiece(g_, tree_.root(), PieceIndex(5), Data(0), ProofOf(5)).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(VerifyPieceTest, OutOfRangeIndexIsInvalidArgument) {
  EXPECT_EQ(
      VerifyPiece(g_, tree_.root(), PieceIndex(6), Data(5), ProofOf(5)).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      VerifyPieceHash(g_, tree_.root(), PieceIndex(6), kZeroLeaf, ProofOf(5))
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(VerifyPieceTest, ProofOfWrongLengthIsInvalidArgument) {
  MerkleProof shorter = ProofOf(2);
  shorter.pop_back();
  MerkleProof longer = ProofOf(2);
  longer.push_back(kZeroLeaf);
  for (const MerkleProof& proof : {shorter, longer}) {
    EXPECT_EQ(
        VerifyPiece(g_, tree_.root(), PieceIndex(2), Data(2), proof).code(),
        absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace shoal
