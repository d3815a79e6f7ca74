#include "agent/verified_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "agent/file_ops.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

constexpr uint32_t kPieces = 100;

// Writes the first 4 bytes of the next Pwrite, then fails it with ENOSPC: a
// disk that filled up halfway through an append.
class HalfWriteOnce final : public RealFileOps {
 public:
  bool armed = false;

  absl::Status Pwrite(int fd, absl::string_view data, uint64_t offset,
                      absl::string_view path) override {
    if (!armed) return RealFileOps::Pwrite(fd, data, offset, path);
    armed = false;
    EXPECT_TRUE(RealFileOps::Pwrite(fd, data.substr(0, 4), offset, path).ok());
    return ErrnoToStatus(ENOSPC, "cannot write", path);
  }
};

class VerifiedJournalTest : public ::testing::Test {
 protected:
  VerifiedJournalTest()
      : path_(MakeTestDir("verified_journal_test") + "/verified") {}

  std::unique_ptr<VerifiedJournal> Create(const Digest& release) {
    auto journal =
        VerifiedJournal::Create(files_, path_, release, kPieces, true);
    EXPECT_TRUE(journal.ok()) << journal.status();
    return journal.ok() ? std::move(*journal) : nullptr;
  }

  absl::StatusOr<VerifiedJournal::Opened> Open(const Digest& release,
                                               uint32_t pieces = kPieces) {
    return VerifiedJournal::Open(files_, path_, release, pieces, true);
  }

  std::string Contents() { return ReadFile(path_, 1 << 20).value(); }

  void AppendRaw(absl::string_view bytes) {
    const int fd = open(path_.c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
    close(fd);
  }

  static std::vector<uint32_t> Pieces(const Bitfield& bits) {
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i < bits.num_pieces(); ++i) {
      if (bits.Get(ReleasePieceIndex(i))) out.push_back(i);
    }
    return out;
  }

  static std::vector<ReleasePieceIndex> Indices(std::vector<uint32_t> v) {
    std::vector<ReleasePieceIndex> out;
    for (uint32_t i : v) out.push_back(ReleasePieceIndex(i));
    return out;
  }

  HalfWriteOnce files_;
  std::string path_;
  const Digest release_ = Sha256("game-server@1.0");
  const Digest other_ = Sha256("game-server@2.0");
};

TEST_F(VerifiedJournalTest, ReopenReplaysEveryAppendedPiece) {
  auto journal = Create(release_);
  ASSERT_TRUE(journal->Append(Indices({3, 1})).ok());
  ASSERT_TRUE(journal->Append(Indices({99})).ok());
  journal.reset();
  auto opened = Open(release_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(Pieces(opened->recorded), (std::vector<uint32_t>{1, 3, 99}));
  EXPECT_EQ(opened->truncated_bytes, 0u);
  EXPECT_EQ(opened->journal->size(),
            kJournalHeaderSize + 3 * kJournalRecordSize);
}

TEST_F(VerifiedJournalTest, NewJournalRecordsNothing) {
  Create(release_).reset();
  auto opened = Open(release_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->recorded.Count(), 0u);
}

TEST_F(VerifiedJournalTest, AppendsAfterReopenKeepEarlierRecords) {
  auto journal = Create(release_);
  ASSERT_TRUE(journal->Append(Indices({5})).ok());
  journal.reset();
  auto opened = Open(release_);
  ASSERT_TRUE(opened.ok());
  ASSERT_TRUE(opened->journal->Append(Indices({6})).ok());
  opened->journal.reset();
  auto again = Open(release_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Pieces(again->recorded), (std::vector<uint32_t>{5, 6}));
}

TEST_F(VerifiedJournalTest, HalfRecordAtTheEndIsIgnoredAndTruncated) {
  auto journal = Create(release_);
  ASSERT_TRUE(journal->Append(Indices({7, 8})).ok());
  journal.reset();
  const std::string whole = Contents();
  AppendRaw(whole.substr(whole.size() - kJournalRecordSize, 5));
  auto opened = Open(release_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(Pieces(opened->recorded), (std::vector<uint32_t>{7, 8}));
  EXPECT_EQ(opened->truncated_bytes, 5u);
  EXPECT_EQ(Contents(), whole);
}

TEST_F(VerifiedJournalTest, GarbageTailEndsReplayEvenBeforeValidRecords) {
  auto journal = Create(release_);
  ASSERT_TRUE(journal->Append(Indices({1, 2})).ok());
  journal.reset();
  const std::string whole = Contents();
  const std::string valid_record = whole.substr(whole.size() - 8);
  AppendRaw(std::string("\x03\x00\x00\x00garb", 8));  // piece 3, bad crc
  AppendRaw(valid_record);
  auto opened = Open(release_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(Pieces(opened->recorded), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(opened->truncated_bytes, 2 * kJournalRecordSize);
  EXPECT_EQ(Contents(), whole);
}

TEST_F(VerifiedJournalTest, RecordCopiedFromAnotherReleaseIsRejected) {
  auto other = Create(other_);
  ASSERT_TRUE(other->Append(Indices({42})).ok());
  other.reset();
  const std::string other_record = Contents().substr(kJournalHeaderSize);
  Create(release_).reset();
  AppendRaw(other_record);
  auto opened = Open(release_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_FALSE(opened->recorded.Get(ReleasePieceIndex(42)));
  EXPECT_EQ(opened->truncated_bytes, kJournalRecordSize);
}

TEST_F(VerifiedJournalTest, JournalOfAnotherReleaseIsRefused) {
  Create(other_).reset();
  auto opened = Open(release_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition)
      << opened.status();
  EXPECT_NE(opened.status().message().find(DigestToHex(other_)),
            std::string::npos);
}

TEST_F(VerifiedJournalTest, JournalOfAnotherPieceCountIsRefused) {
  Create(release_).reset();
  auto opened = Open(release_, kPieces + 1);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition)
      << opened.status();
}

TEST_F(VerifiedJournalTest, CorruptHeaderIsDataLoss) {
  Create(release_).reset();
  std::string bytes = Contents();
  bytes[20] ^= 0x01;
  ASSERT_TRUE(WriteFileAtomically(path_, bytes, 0644, false).ok());
  EXPECT_EQ(Open(release_).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(VerifiedJournalTest, ShortHeaderIsDataLoss) {
  Create(release_).reset();
  ASSERT_TRUE(
      WriteFileAtomically(path_, Contents().substr(0, 20), 0644, false).ok());
  EXPECT_EQ(Open(release_).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(VerifiedJournalTest, FailedAppendIsCutOffBeforeTheNextOne) {
  auto journal = Create(release_);
  ASSERT_TRUE(journal->Append(Indices({1})).ok());
  files_.armed = true;
  EXPECT_EQ(journal->Append(Indices({2, 3})).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(journal->Append(Indices({4})).ok());
  journal.reset();
  auto opened = Open(release_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(Pieces(opened->recorded), (std::vector<uint32_t>{1, 4}));
  EXPECT_EQ(opened->truncated_bytes, 0u);
}

}  // namespace
}  // namespace shoal::agent
