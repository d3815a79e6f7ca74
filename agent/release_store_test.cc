#include "agent/release_store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/file_ops.h"
#include "agent/piece_buffer.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "common/merkle.h"
#include "common/release_pieces.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

constexpr uint64_t kPiece = 32 * 1024;
constexpr int64_t kCreatedMs = 1704067200000;  // 2024-01-01

ReleasePieceIndex P(uint32_t i) { return ReleasePieceIndex(i); }

struct FileSpec {
  std::string path;
  uint64_t size;
};

// A really signed release of random files, with every piece's bytes and
// proof at hand.
class TestRelease {
 public:
  TestRelease(std::vector<FileSpec> files, uint32_t seed,
              const std::string& version = "1.0") {
    std::mt19937 rng(seed);
    v1::ManifestBody body;
    body.set_format(kManifestFormat);
    body.set_name("game-server");
    body.set_version(version);
    body.set_sequence(1);
    body.set_created_unix_ms(kCreatedMs);
    body.set_expires_unix_ms(kCreatedMs + 86400000);
    body.set_piece_size(kPiece);
    for (const FileSpec& spec : files) {
      std::string content(spec.size, '\0');
      for (char& c : content) c = static_cast<char>(rng());
      v1::FileEntry* entry = body.add_files();
      entry->set_path(spec.path);
      entry->set_size(spec.size);
      entry->set_mode(0644);
      trees_.push_back(TreeOf(content));
      if (trees_.back()) {
        entry->set_pieces_root(std::string(DigestBytes(trees_.back()->root())));
      }
      contents_.push_back(std::move(content));
    }
    PrivateKey key = PrivateKey::Generate().value();
    TrustPolicy trust = TrustPolicy::Create({key.public_key()}, 1).value();
    const std::string bytes = SignManifest(body, {key})->SerializeAsString();
    manifest_ =
        Manifest::Verify(bytes, trust,
                         absl::FromUnixMillis(kCreatedMs) + absl::Hours(1))
            .value();
    pieces_ = ReleasePieces::Create(*manifest_).value();
  }

  const Manifest& manifest() const { return *manifest_; }
  const ReleasePieces& pieces() const { return *pieces_; }
  uint32_t total() const { return pieces_->total_pieces(); }
  const std::string& content(size_t file) const { return contents_[file]; }

  std::string Data(uint32_t piece) const {
    const FilePiece where = pieces_->Locate(P(piece));
    const FileGeometry& g = pieces_->geometry(where.file);
    return contents_[where.file.value()].substr(g.piece_offset(where.piece),
                                                g.piece_length(where.piece));
  }
  MerkleProof Proof(uint32_t piece) const {
    const FilePiece where = pieces_->Locate(P(piece));
    return trees_[where.file.value()]->Proof(where.piece).value();
  }
  // Where the piece lies in the store's data files.
  std::string DataPath(const std::string& dir, uint32_t piece) const {
    const FilePiece where = pieces_->Locate(P(piece));
    return dir + "/data/" + manifest_->body().files(where.file.value()).path();
  }
  uint64_t Offset(uint32_t piece) const {
    const FilePiece where = pieces_->Locate(P(piece));
    return pieces_->geometry(where.file).piece_offset(where.piece);
  }
  // OK iff `served` is piece `piece` with a proof into the signed root.
  absl::Status Check(uint32_t piece, const ServedPiece& served) const {
    const FilePiece where = pieces_->Locate(P(piece));
    const Digest root = trees_[where.file.value()]->root();
    return VerifyPiece(pieces_->geometry(where.file), root, where.piece,
                       served.data.view(), served.proof);
  }

 private:
  static std::optional<PieceTree> TreeOf(const std::string& content) {
    if (content.empty()) return std::nullopt;
    const FileGeometry g = FileGeometry::Create(content.size(), kPiece).value();
    std::vector<Digest> layer;
    for (uint32_t i = 0; i < g.num_pieces(); ++i) {
      layer.push_back(PieceHash(g, PieceIndex(i),
                                absl::string_view(content).substr(
                                    g.piece_offset(PieceIndex(i)),
                                    g.piece_length(PieceIndex(i))))
                          .value());
    }
    return PieceTree::Create(g, std::move(layer)).value();
  }

  std::optional<Manifest> manifest_;
  std::optional<ReleasePieces> pieces_;
  std::vector<std::string> contents_;
  std::vector<std::optional<PieceTree>> trees_;
};

// A multi-file release: a short last piece, an empty file, a file of whole
// pieces and a one-piece file (proofs of lengths 2, 1 and 0). 7 pieces.
TestRelease DefaultRelease(const std::string& version = "1.0") {
  return TestRelease({{"a/bin/server", 3 * kPiece + 100},
                      {"a/empty", 0},
                      {"b.dat", 2 * kPiece},
                      {"c.txt", 10}},
                     1, version);
}

// The real filesystem, with a disk that can fill up or fail.
class FaultyFileOps final : public RealFileOps {
 public:
  // Bytes that Pwrite may still write before ENOSPC; negative: no limit.
  std::atomic<int64_t> space{-1};
  // When not 0, every Pwrite / DataSync fails with this errno.
  std::atomic<int> write_errno{0};
  std::atomic<int> sync_errno{0};

  absl::Status Pwrite(int fd, absl::string_view data, uint64_t offset,
                      absl::string_view path) override {
    if (write_errno != 0)
      return ErrnoToStatus(write_errno, "cannot write", path);
    const int64_t left = space;
    if (left >= 0) {
      if (static_cast<int64_t>(data.size()) > left) {
        return ErrnoToStatus(ENOSPC, "cannot write", path);
      }
      space -= data.size();
    }
    return RealFileOps::Pwrite(fd, data, offset, path);
  }
  absl::Status DataSync(int fd, absl::string_view path) override {
    if (sync_errno != 0) return ErrnoToStatus(sync_errno, "cannot sync", path);
    return RealFileOps::DataSync(fd, path);
  }
  absl::StatusOr<uint64_t> FreeBytes(const std::string& path) override {
    const int64_t left = space;
    if (left >= 0) return static_cast<uint64_t>(left);
    return RealFileOps::FreeBytes(path);
  }
};

std::string ReadRange(const std::string& path, uint64_t offset, uint64_t n) {
  return ReadFile(path, uint64_t{1} << 30).value().substr(offset, n);
}

void OverwriteRange(const std::string& path, uint64_t offset,
                    absl::string_view bytes) {
  const int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(PwriteAll(fd, bytes, offset, path).ok());
  close(fd);
}

class ReleaseStoreTest : public ::testing::Test {
 protected:
  ReleaseStoreTest()
      : dir_(MakeTestDir("release_store_test") + "/release"),
        release_(DefaultRelease()) {}

  std::unique_ptr<ReleaseStore> Create(const TestRelease& r,
                                       const std::string& dir) {
    auto store = ReleaseStore::Create(files_, dir, r.manifest(), options_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<ReleaseStore> Create() { return Create(release_, dir_); }
  absl::StatusOr<std::unique_ptr<ReleaseStore>> Open() {
    return ReleaseStore::Open(files_, dir_, release_.manifest(), options_);
  }
  absl::Status Put(ReleaseStore& store, uint32_t i, const TestRelease& r) {
    return store.Put(P(i), r.Data(i), r.Proof(i));
  }
  absl::Status Put(ReleaseStore& store, uint32_t i) {
    return Put(store, i, release_);
  }

  FaultyFileOps files_;
  ReleaseStoreOptions options_;
  std::string dir_;
  TestRelease release_;
};

TEST_F(ReleaseStoreTest, CreateMakesEveryFileAtItsSignedSize) {
  auto store = Create();
  EXPECT_EQ(store->verified_count(), 0u);
  EXPECT_FALSE(store->complete());
  for (const v1::FileEntry& f : release_.manifest().body().files()) {
    absl::StatusOr<std::string> bytes =
        ReadFile(store->data_dir() + "/" + f.path(), 1 << 20);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_EQ(bytes->size(), f.size()) << f.path();
  }
}

TEST_F(ReleaseStoreTest, EveryPieceReadsBackWithItsProof) {
  auto store = Create();
  for (uint32_t i = release_.total(); i-- > 0;) {
    ASSERT_TRUE(Put(*store, i).ok()) << i;
  }
  for (uint32_t i = 0; i < release_.total(); ++i) {
    absl::StatusOr<ServedPiece> served = store->Read(P(i));
    ASSERT_TRUE(served.ok()) << served.status();
    EXPECT_EQ(served->data.view(), release_.Data(i)) << i;
    EXPECT_EQ(served->proof, release_.Proof(i)) << i;
  }
  EXPECT_TRUE(store->complete());
  EXPECT_EQ(store->verified_bytes(), release_.manifest().total_size());
  EXPECT_EQ(ReadFile(store->data_dir() + "/a/bin/server", 1 << 20).value(),
            release_.content(0));
}

TEST_F(ReleaseStoreTest, PieceIsNotReadableBeforePut) {
  auto store = Create();
  EXPECT_FALSE(store->Has(P(0)));
  EXPECT_EQ(store->Read(P(0)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Read(P(99)).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ReleaseStoreTest, FlippedByteIsDataLossAndNothingIsStored) {
  auto store = Create();
  std::string data = release_.Data(1);
  data[100] ^= 0x01;
  EXPECT_EQ(store->Put(P(1), data, release_.Proof(1)).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_FALSE(store->Has(P(1)));
  EXPECT_EQ(store->Read(P(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadRange(release_.DataPath(dir_, 1), release_.Offset(1), kPiece),
            std::string(kPiece, '\0'));
  ASSERT_TRUE(store->Commit().ok());
  store.reset();
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE((*reopened)->Has(P(1)));
}

TEST_F(ReleaseStoreTest, BadProofIsDataLossAndNothingIsStored) {
  auto store = Create();
  MerkleProof proof = release_.Proof(0);
  ASSERT_FALSE(proof.empty());
  proof.back()[0] ^= 0x80;
  EXPECT_EQ(store->Put(P(0), release_.Data(0), proof).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_FALSE(store->Has(P(0)));
  EXPECT_EQ(ReadRange(release_.DataPath(dir_, 0), 0, kPiece),
            std::string(kPiece, '\0'));
}

TEST_F(ReleaseStoreTest, ValidPieceUnderAnotherIndexIsDataLoss) {
  auto store = Create();
  EXPECT_EQ(store->Put(P(1), release_.Data(0), release_.Proof(0)).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_FALSE(store->Has(P(1)));
}

TEST_F(ReleaseStoreTest, IndexOutOfRangeIsInvalidArgument) {
  auto store = Create();
  EXPECT_EQ(store->Put(P(release_.total()), release_.Data(0), release_.Proof(0))
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ReleaseStoreTest, WrongLengthsAreInvalidArgument) {
  auto store = Create();
  // Piece 3 is the short last piece of a/bin/server.
  const std::string padded = release_.Data(3) + std::string(kPiece - 100, 0);
  EXPECT_EQ(store->Put(P(3), padded, release_.Proof(3)).code(),
            absl::StatusCode::kInvalidArgument);
  MerkleProof longer = release_.Proof(0);
  longer.push_back(Digest{});
  EXPECT_EQ(store->Put(P(0), release_.Data(0), longer).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->verified_count(), 0u);
}

TEST_F(ReleaseStoreTest, SecondPutOfAPieceIsAlreadyExists) {
  auto store = Create();
  ASSERT_TRUE(Put(*store, 2).ok());
  EXPECT_EQ(Put(*store, 2).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->verified_count(), 1u);
}

TEST_F(ReleaseStoreTest, RacingPutsOfTheSamePiecesStoreEachOnce) {
  auto store = Create();
  std::atomic<int> stored{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint32_t i = 0; i < release_.total(); ++i) {
        const absl::Status status = Put(*store, i);
        if (status.ok()) {
          ++stored;
        } else {
          EXPECT_TRUE(absl::IsAlreadyExists(status)) << status;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(stored.load(), static_cast<int>(release_.total()));
  EXPECT_TRUE(store->complete());
}

TEST_F(ReleaseStoreTest, ReopenTrustsRecordedPiecesWithoutHashingThem) {
  auto store = Create();
  ASSERT_TRUE(Put(*store, 0).ok());
  ASSERT_TRUE(Put(*store, 4).ok());
  ASSERT_TRUE(store->Commit().ok());
  store.reset();
  // Damage piece 0 behind the store's back: only re-hashing would notice.
  const std::string junk(kPiece, 'x');
  OverwriteRange(release_.DataPath(dir_, 0), 0, junk);
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE((*reopened)->Has(P(0)));
  EXPECT_TRUE((*reopened)->Has(P(4)));
  EXPECT_EQ((*reopened)->verified_count(), 2u);
  EXPECT_EQ((*reopened)->verified_bytes(), 2 * kPiece);
  EXPECT_EQ((*reopened)->Read(P(0))->data.view(), junk);
  EXPECT_EQ((*reopened)->Read(P(4))->data.view(), release_.Data(4));
}

TEST_F(ReleaseStoreTest, WrittenButUnrecordedPieceIsMissingAfterReopen) {
  Create().reset();
  OverwriteRange(release_.DataPath(dir_, 1), release_.Offset(1),
                 release_.Data(1));
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE((*reopened)->Has(P(1)));
  EXPECT_TRUE(Put(**reopened, 1).ok());
}

TEST_F(ReleaseStoreTest, CommitEveryRecordsWithoutAnExplicitCommit) {
  options_.commit_every = 2;
  auto store = Create();
  const std::string journal = dir_ + "/verified";
  ASSERT_TRUE(Put(*store, 0).ok());
  EXPECT_EQ(ReadFile(journal, 1 << 20)->size(), 48u);
  ASSERT_TRUE(Put(*store, 1).ok());
  EXPECT_EQ(ReadFile(journal, 1 << 20)->size(), 48u + 2 * 8);
}

TEST_F(ReleaseStoreTest, TornJournalTailIsIgnoredAndTruncated) {
  auto store = Create();
  ASSERT_TRUE(Put(*store, 2).ok());
  store.reset();  // commits
  const std::string journal = dir_ + "/verified";
  const std::string clean = ReadFile(journal, 1 << 20).value();
  OverwriteRange(journal, clean.size(), std::string("\x05\x00\x00", 3));
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->verified_count(), 1u);
  EXPECT_EQ(ReadFile(journal, 1 << 20).value(), clean);
  ASSERT_TRUE(Put(**reopened, 5).ok());
  reopened->reset();
  auto again = Open();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->verified_count(), 2u);
}

TEST_F(ReleaseStoreTest, JournalOfAnotherReleaseIsRefused) {
  Create().reset();
  const std::string other_dir = MakeTestDir("other") + "/release";
  Create(DefaultRelease("2.0"), other_dir).reset();
  const std::string other = ReadFile(other_dir + "/verified", 1 << 20).value();
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/verified", other, 0644, false).ok());
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kFailedPrecondition)
      << Open().status();
}

TEST_F(ReleaseStoreTest, OpenWithAnotherReleasesManifestIsRefused) {
  Create().reset();
  auto opened = ReleaseStore::Open(files_, dir_,
                                   DefaultRelease("2.0").manifest(), options_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ReleaseStoreTest, CreateRefusesADirectoryHoldingARelease) {
  Create().reset();
  EXPECT_EQ(ReleaseStore::Create(files_, dir_, release_.manifest(), options_)
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReleaseStore::Create(files_, dir_, DefaultRelease("2.0").manifest(),
                                 options_)
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(ReleaseStoreTest, MissingDataFileIsDataLoss) {
  Create().reset();
  ASSERT_EQ(unlink((dir_ + "/data/b.dat").c_str()), 0);
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kDataLoss);
}

// Descriptors this process has open.
int OpenDescriptors() {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd) n += fcntl(fd, F_GETFD) != -1;
  return n;
}

TEST_F(ReleaseStoreTest, ManyFilesWorkThroughFewOpenDescriptors) {
  std::vector<FileSpec> specs;
  for (int i = 0; i < 40; ++i) {
    specs.push_back({"f" + std::to_string(100 + i), kPiece + 7});
  }
  TestRelease many(specs, 3);
  options_.max_open_files = 3;
  const int before = OpenDescriptors();
  auto store = Create(many, dir_);
  for (uint32_t i = 0; i < many.total(); ++i) {
    ASSERT_TRUE(Put(*store, i, many).ok()) << i;
  }
  ASSERT_TRUE(store->Commit().ok());
  for (uint32_t i = 0; i < many.total(); ++i) {
    EXPECT_EQ(store->Read(P(i))->data.view(), many.Data(i)) << i;
  }
  // Three data files, the proof slots and the journal.
  EXPECT_LE(OpenDescriptors() - before, 5);
  store.reset();
  EXPECT_EQ(OpenDescriptors(), before);
}

TEST_F(ReleaseStoreTest, DiskBytesGrowWithPieces) {
  TestRelease big({{"big", 16 * kPiece}}, 4);
  auto store = Create(big, dir_);
  const uint64_t empty = store->disk_bytes();
  for (uint32_t i = 0; i < big.total(); ++i) {
    ASSERT_TRUE(Put(*store, i, big).ok());
  }
  EXPECT_LT(empty, 4 * kPiece);
  EXPECT_GE(store->disk_bytes(), empty + 16 * kPiece);
}

TEST_F(ReleaseStoreTest, IoErrorIsStickyUntilClearedAndReadsKeepWorking) {
  auto store = Create();
  ASSERT_TRUE(Put(*store, 0).ok());
  files_.write_errno = EIO;
  EXPECT_EQ(Put(*store, 1).code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(store->Has(P(1)));
  files_.write_errno = 0;
  EXPECT_EQ(Put(*store, 2).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store->error().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store->Read(P(0))->data.view(), release_.Data(0));
  store->ClearError();
  EXPECT_TRUE(Put(*store, 1).ok());
  EXPECT_TRUE(store->error().ok());
}

TEST_F(ReleaseStoreTest, FailedSyncAtCommitForgetsTheBatch) {
  auto store = Create();
  ASSERT_TRUE(Put(*store, 0).ok());
  ASSERT_TRUE(store->Commit().ok());
  ASSERT_TRUE(Put(*store, 1).ok());
  files_.sync_errno = EIO;
  EXPECT_EQ(store->Commit().code(), absl::StatusCode::kInternal);
  files_.sync_errno = 0;
  EXPECT_TRUE(store->Has(P(0)));
  EXPECT_FALSE(store->Has(P(1)));
  EXPECT_EQ(store->error().code(), absl::StatusCode::kInternal);
  store.reset();
  auto reopened = Open();
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->verified_count(), 1u);
}

// On a disk with room for a few of the release's pieces: puts pieces until
// the disk is full, checks the error state, calls `make_room`, and expects
// the rest to go in only after ClearError().
void ExpectFullDiskIsStickyUntilCleared(
    FileOps& files, const std::string& dir, const TestRelease& r,
    const std::function<void()>& make_room) {
  ReleaseStoreOptions options;
  auto created = ReleaseStore::Create(files, dir, r.manifest(), options);
  ASSERT_TRUE(created.ok()) << created.status();
  ReleaseStore& store = **created;
  uint32_t failed = r.total();
  for (uint32_t i = 0; i < r.total() && failed == r.total(); ++i) {
    const absl::Status status = store.Put(P(i), r.Data(i), r.Proof(i));
    if (!status.ok()) {
      EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
      failed = i;
    }
  }
  ASSERT_GT(failed, 0u);
  ASSERT_LT(failed, r.total()) << "the disk never filled up";
  EXPECT_FALSE(store.Has(P(failed)));
  EXPECT_EQ(store.Read(P(0))->data.view(), r.Data(0));
  EXPECT_FALSE(store.HasRoomForAPiece());
  make_room();
  EXPECT_TRUE(store.HasRoomForAPiece());
  EXPECT_EQ(store.Put(P(failed), r.Data(failed), r.Proof(failed)).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store.error().code(), absl::StatusCode::kResourceExhausted);
  store.ClearError();
  for (uint32_t i = failed; i < r.total(); ++i) {
    ASSERT_TRUE(store.Put(P(i), r.Data(i), r.Proof(i)).ok()) << i;
  }
  EXPECT_TRUE(store.complete());
  EXPECT_TRUE(store.Commit().ok());
}

// On a real 512 KiB tmpfs when this test may mount one (as root); otherwise
// on the fault-injecting seam, saying so.
TEST_F(ReleaseStoreTest, FullDiskIsStickyUntilClearedAndReadsKeepWorking) {
  TestRelease r({{"big", 8 * kPiece}}, 5);
  const std::string mnt = MakeTestDir("tmpfs");
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=512k") != 0) {
    const std::string why = strerror(errno);
    RecordProperty("disk", "seam");
    std::cerr << "cannot mount a tmpfs (" << why
              << "); filling up the fault-injecting seam instead\n";
    files_.space = 5 * kPiece;
    ExpectFullDiskIsStickyUntilCleared(files_, dir_, r,
                                       [&] { files_.space = -1; });
    return;
  }
  RecordProperty("disk", "tmpfs");
  absl::Cleanup unmount = [&] {
    EXPECT_EQ(umount2(mnt.c_str(), MNT_DETACH), 0) << strerror(errno);
  };
  const std::string ballast = mnt + "/ballast";
  ASSERT_TRUE(
      WriteFileAtomically(ballast, std::string(384 * 1024, 'b'), 0644, false)
          .ok());
  ExpectFullDiskIsStickyUntilCleared(files_, mnt + "/release", r, [&] {
    ASSERT_EQ(unlink(ballast.c_str()), 0);
  });
}

// The child of the crash test: puts every piece in a random order until
// killed. Never returns.
[[noreturn]] void PutUntilKilled(const std::string& dir, const TestRelease& r,
                                 ReleaseStoreOptions options, uint32_t seed,
                                 int ready_fd) {
  RealFileOps files;
  auto store = ReleaseStore::Open(files, dir, r.manifest(), options);
  if (!store.ok()) _exit(2);
  std::vector<uint32_t> order(r.total());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(seed));
  if (write(ready_fd, "r", 1) != 1) _exit(3);
  for (const uint32_t i : order) {
    if (!(*store)->Put(P(i), r.Data(i), r.Proof(i)).ok()) _exit(4);
  }
  if (!(*store)->Commit().ok()) _exit(5);
  _exit(0);
}

TEST_F(ReleaseStoreTest, KillNineLeavesOnlyVerifiedPiecesRecorded) {
  TestRelease r({{"big", 120 * kPiece + 123}, {"small", 5000}}, 6);
  std::mt19937 rng(20240101);
  int partial = 0;
  for (uint32_t round = 0; round < 20; ++round) {
    options_.durable = round % 2 == 0;
    options_.commit_every = 4;
    dir_ = MakeTestDir("kill") + "/release";
    Create(r, dir_).reset();
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) PutUntilKilled(dir_, r, options_, round, ready[1]);
    close(ready[1]);
    char byte;
    ASSERT_EQ(read(ready[0], &byte, 1), 1);
    close(ready[0]);
    // A random moment in the child's run, not synchronisation.
    usleep(std::uniform_int_distribution<int>(0, 15000)(rng));
    kill(pid, SIGKILL);
    int wstatus;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    auto store = ReleaseStore::Open(files_, dir_, r.manifest(), options_);
    ASSERT_TRUE(store.ok()) << store.status();
    const uint32_t recorded = (*store)->verified_count();
    if (recorded > 0 && recorded < r.total()) ++partial;
    for (uint32_t i = 0; i < r.total(); ++i) {
      if (!(*store)->Has(P(i))) continue;
      absl::StatusOr<ServedPiece> served = (*store)->Read(P(i));
      ASSERT_TRUE(served.ok()) << served.status();
      EXPECT_EQ(served->data.view(), r.Data(i)) << "round " << round << " piece " << i;
      EXPECT_TRUE(r.Check(i, *served).ok())
          << "round " << round << " piece " << i;
    }
  }
  RecordProperty("rounds_killed_mid_download", partial);
  EXPECT_GT(partial, 0) << "no round was killed mid-download";
}

// The real filesystem, noting which writes went to descriptors opened with
// O_DIRECT, and able to refuse O_DIRECT as tmpfs does.
class DirectIoFileOps final : public RealFileOps {
 public:
  bool refuse_direct = false;
  std::atomic<int> direct_opens{0};
  std::atomic<int> direct_writes{0};
  std::atomic<int> cached_writes{0};

  absl::StatusOr<int> Open(const std::string& path, int flags,
                           mode_t mode) override {
    if (flags & O_DIRECT) {
      ++direct_opens;
      if (refuse_direct) return ErrnoToStatus(EINVAL, "cannot open", path);
    }
    absl::StatusOr<int> fd = RealFileOps::Open(path, flags, mode);
    if (fd.ok() && (flags & O_DIRECT)) {
      absl::MutexLock lock(&mu_);
      direct_fds_.insert(*fd);
    }
    return fd;
  }
  void Close(int fd) override {
    {
      absl::MutexLock lock(&mu_);
      direct_fds_.erase(fd);
    }
    RealFileOps::Close(fd);
  }
  absl::Status Pwrite(int fd, absl::string_view data, uint64_t offset,
                      absl::string_view path) override {
    bool direct;
    {
      absl::MutexLock lock(&mu_);
      direct = direct_fds_.contains(fd);
    }
    // Piece data only; not the proofs or the journal.
    if (absl::StrContains(path, "/data/")) {
      ++(direct ? direct_writes : cached_writes);
    }
    return RealFileOps::Pwrite(fd, data, offset, path);
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<int> direct_fds_ ABSL_GUARDED_BY(mu_);
};

// Puts every piece of `r` from page-aligned buffers, as the transport
// delivers them.
void PutAllAligned(ReleaseStore& store, const TestRelease& r) {
  for (uint32_t i = 0; i < r.total(); ++i) {
    const PieceBuffer data = PieceBuffer::CopyOf(r.Data(i));
    ASSERT_TRUE(store.Put(P(i), data.view(), r.Proof(i)).ok()) << i;
  }
}

TEST(ReleaseStoreDirectIoTest, WholeAlignedPiecesBypassThePageCache) {
  // Three whole pieces and a short last one.
  TestRelease r({{"big", 3 * kPiece + 100}}, 11);
  DirectIoFileOps files;
  const std::string dir = MakeTestDir("direct_io") + "/release";
  auto store = ReleaseStore::Create(files, dir, r.manifest(), {});
  ASSERT_TRUE(store.ok()) << store.status();
  PutAllAligned(**store, r);
  EXPECT_EQ(files.direct_writes.load(), 3);
  EXPECT_EQ(files.cached_writes.load(), 1);  // the short last piece
  ASSERT_TRUE((*store)->Commit().ok());
  for (uint32_t i = 0; i < r.total(); ++i) {
    EXPECT_EQ((*store)->Read(P(i))->data.view(), r.Data(i)) << i;
  }
  store->reset();
  auto reopened = ReleaseStore::Open(files, dir, r.manifest(), {});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE((*reopened)->complete());
  EXPECT_EQ(ReadFile((*reopened)->data_dir() + "/big", 1 << 20).value(),
            r.content(0));
}

TEST(ReleaseStoreDirectIoTest, UnalignedBuffersAndDirectIoOffUseThePageCache) {
  TestRelease r({{"big", 4 * kPiece}}, 12);
  DirectIoFileOps files;
  ReleaseStoreOptions off;
  off.direct_io = false;
  auto store = ReleaseStore::Create(
      files, MakeTestDir("direct_io_off") + "/release", r.manifest(), off);
  ASSERT_TRUE(store.ok()) << store.status();
  PutAllAligned(**store, r);
  EXPECT_EQ(files.direct_opens.load(), 0);
  EXPECT_EQ(files.cached_writes.load(), 4);

  DirectIoFileOps files2;
  auto store2 = ReleaseStore::Create(
      files2, MakeTestDir("direct_io_unaligned") + "/release", r.manifest(),
      {});
  ASSERT_TRUE(store2.ok()) << store2.status();
  for (uint32_t i = 0; i < r.total(); ++i) {
    // One byte past a page boundary.
    PieceBuffer padded(r.Data(i).size() + 1);
    memcpy(padded.data() + 1, r.Data(i).data(), r.Data(i).size());
    absl::string_view data(padded.data() + 1, r.Data(i).size());
    ASSERT_TRUE((*store2)->Put(P(i), data, r.Proof(i)).ok()) << i;
  }
  EXPECT_EQ(files2.direct_writes.load(), 0);
  EXPECT_TRUE((*store2)->complete());
}

TEST(ReleaseStoreDirectIoTest, RefusedDirectIoFallsBackOnceForGood) {
  TestRelease r({{"big", 4 * kPiece}}, 13);
  DirectIoFileOps files;
  files.refuse_direct = true;
  const std::string dir = MakeTestDir("direct_io_refused") + "/release";
  auto store = ReleaseStore::Create(files, dir, r.manifest(), {});
  ASSERT_TRUE(store.ok()) << store.status();
  PutAllAligned(**store, r);
  EXPECT_EQ(files.direct_opens.load(), 1);  // tried once, then never again
  EXPECT_EQ(files.cached_writes.load(), 4);
  EXPECT_TRUE((*store)->complete());
  EXPECT_TRUE((*store)->error().ok());
  EXPECT_EQ(ReadFile((*store)->data_dir() + "/big", 1 << 20).value(),
            r.content(0));
}

TEST(ReleaseStoreDirectIoTest, FullDiskOnTheDirectPathIsResourceExhausted) {
  TestRelease r({{"big", 4 * kPiece}}, 14);
  FaultyFileOps files;
  auto store = ReleaseStore::Create(
      files, MakeTestDir("direct_io_full") + "/release", r.manifest(), {});
  ASSERT_TRUE(store.ok()) << store.status();
  files.space = 0;
  const PieceBuffer data = PieceBuffer::CopyOf(r.Data(0));
  EXPECT_EQ((*store)->Put(P(0), data.view(), r.Proof(0)).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE((*store)->Has(P(0)));
  EXPECT_EQ((*store)->error().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace shoal::agent
