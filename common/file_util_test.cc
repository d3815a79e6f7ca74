#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

TEST(FileUtilTest, AtomicWriteReplacesWholeFileWithMode) {
  std::string dir = MakeTestDir("file_util");
  std::string path = dir + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, "first", 0600).ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second version", 0600).ok());
  auto read = ReadFile(path, 100);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "second version");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(FileUtilTest, ReadFileRefusesFilesOverTheLimit) {
  std::string path = MakeTestDir("file_util") + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, "0123456789", 0644).ok());
  EXPECT_EQ(ReadFile(path, 9).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ReadFile(path, 10).ok());
}

TEST(FileUtilTest, MissingFileIsNotFoundNamingIt) {
  auto read = ReadFile("/nonexistent/shoal-file", 10);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(read.status().message().find("/nonexistent/shoal-file"),
            std::string::npos);
}

TEST(FileUtilTest, MakeDirsCreatesParentsAndRefusesAFile) {
  std::string dir = MakeTestDir("file_util");
  ASSERT_TRUE(MakeDirs(dir + "/a/b/c").ok());
  struct stat st;
  ASSERT_EQ(stat((dir + "/a/b/c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  ASSERT_TRUE(WriteFileAtomically(dir + "/file", "x", 0644).ok());
  EXPECT_FALSE(MakeDirs(dir + "/file/sub").ok());
}

TEST(FileUtilTest, PreadExactReportsShortFileAsDataLoss) {
  std::string path = MakeTestDir("file_util") + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, "abc", 0644).ok());
  int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[8];
  EXPECT_TRUE(PreadExact(fd, buf, 3, 0, path).ok());
  EXPECT_EQ(PreadExact(fd, buf, 4, 0, path).code(),
            absl::StatusCode::kDataLoss);
  close(fd);
}

TEST(FileUtilTest, ErrnoMapsDiskFullToResourceExhausted) {
  EXPECT_EQ(ErrnoToStatus(ENOSPC, "cannot write", "/x").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoToStatus(EACCES, "cannot open", "/x").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(FileUtilTest, ErrnoMapsUnusablePathToInvalidArgument) {
  const std::string file = MakeTestDir("file_util") + "/f";
  ASSERT_TRUE(WriteFileAtomically(file, "x", 0644).ok());
  absl::StatusOr<std::string> read = ReadFile(file + "/below", 100);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrnoToStatus(ENAMETOOLONG, "cannot open", "/x").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal
