#include "agent/install.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "agent/install_files.h"
#include "agent/install_test_util.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

using install_testing::DiffTree;
using install_testing::ListTree;
using install_testing::RandomBytes;
using install_testing::TestRelease;

TestRelease Game(const std::string& version, uint32_t seed) {
  return TestRelease(
      "game-server", version,
      {{"README", "game server " + version + "\n", 0444},
       {"bin/server", RandomBytes(300000, seed), 0755},
       {"config/app.conf", "port = 7000\n", 0640},
       {"empty", "", 0600},
       {"lib/deep/x/libgame.so", RandomBytes(70000, seed + 1), 0755}});
}

// Entries of `dir` whose names start with ".shoal-".
std::set<std::string> Leftovers(const std::string& dir) {
  std::set<std::string> all;
  std::set<std::string> out;
  ListTree(dir, "", all);
  for (const std::string& path : all) {
    if (absl::StartsWith(path, ".shoal-")) out.insert(path);
  }
  return out;
}

std::string Readlink(const std::string& path) {
  char buffer[4096];
  const ssize_t n = readlink(path.c_str(), buffer, sizeof(buffer));
  return n < 0 ? "" : std::string(buffer, n);
}

struct stat Stat(const std::string& path) {
  struct stat st = {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << strerror(errno);
  return st;
}

// Fails every copy with ENOSPC, as a full disk does.
class FullDiskCopier final : public FileCopier {
 public:
  absl::StatusOr<CopyMethod> Copy(int, int, uint64_t, const std::string&,
                                  const std::string& dst_path) override {
    return ErrnoToStatus(ENOSPC, "cannot copy into", dst_path);
  }
};

class InstallTest : public ::testing::Test {
 protected:
  InstallTest()
      : root_(MakeTestDir("install_test")),
        dest_(root_ + "/dest"),
        v1_(Game("1.0", 1)),
        v2_(Game("2.0", 2)),
        store1_(v1_.WriteStore(root_ + "/store1")),
        store2_(v2_.WriteStore(root_ + "/store2")) {}

  InstallResult MustInstall(const TestRelease& release,
                            const std::string& store) {
    absl::StatusOr<InstallResult> result =
        Install(release.manifest(), store, dest_, options_);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : InstallResult{};
  }

  const std::string root_;
  const std::string dest_;
  const TestRelease v1_;
  const TestRelease v2_;
  const std::string store1_;
  const std::string store2_;
  InstallOptions options_;
};

TEST_F(InstallTest, CopiesFilesWithTheManifestModes) {
  const InstallResult result = MustInstall(v1_, store1_);
  EXPECT_EQ(result.release, "game-server@1.0");
  EXPECT_EQ(result.path, dest_ + "/game-server@1.0");
  EXPECT_EQ(DiffTree(result.path, v1_), "");
  EXPECT_EQ(Stat(result.path).st_mode & 07777, 0755u);
  EXPECT_EQ(Stat(result.path + "/lib/deep").st_mode & 07777, 0755u);
  EXPECT_FALSE(result.reused);
  EXPECT_EQ(result.copied.bytes, v1_.manifest().total_size());
  uint32_t copied = 0;
  std::string methods;
  for (int m = 0; m < kNumCopyMethods; ++m) {
    copied += result.copied.files_by_method[m];
    absl::StrAppend(&methods, " ", CopyMethodName(static_cast<CopyMethod>(m)),
                    "=", result.copied.files_by_method[m]);
  }
  EXPECT_EQ(copied, 4u);  // the empty file is created, not copied
  // Which methods this filesystem allowed, for whoever reads the log.
  RecordProperty("copy_methods", methods);
  std::cerr << "files copied by method:" << methods << "\n";
  EXPECT_EQ(Leftovers(dest_), std::set<std::string>{});
}

TEST_F(InstallTest, CurrentIsARelativeSymlinkToTheNewVersion) {
  const InstallResult result = MustInstall(v1_, store1_);
  EXPECT_TRUE(result.switched);
  EXPECT_EQ(result.previous, "");
  EXPECT_TRUE(S_ISLNK(Stat(dest_ + "/current").st_mode));
  EXPECT_EQ(Readlink(dest_ + "/current"), "game-server@1.0");
  EXPECT_EQ(DiffTree(dest_ + "/current", v1_), "");
  EXPECT_EQ(CurrentRelease(dest_).value(), "game-server@1.0");
}

TEST_F(InstallTest, SecondVersionBecomesCurrentAndTheFirstStays) {
  MustInstall(v1_, store1_);
  const InstallResult result = MustInstall(v2_, store2_);
  EXPECT_EQ(result.previous, "game-server@1.0");
  EXPECT_EQ(Readlink(dest_ + "/current"), "game-server@2.0");
  EXPECT_EQ(DiffTree(dest_ + "/current", v2_), "");
  EXPECT_EQ(DiffTree(dest_ + "/game-server@1.0", v1_), "");

  const std::vector<InstalledVersion> installed = ListInstalled(dest_).value();
  ASSERT_EQ(installed.size(), 2u);
  EXPECT_EQ(installed[0].release, "game-server@1.0");
  EXPECT_EQ(installed[0].release_id, v1_.manifest().release_id());
  EXPECT_FALSE(installed[0].current);
  EXPECT_EQ(installed[1].release, "game-server@2.0");
  EXPECT_TRUE(installed[1].current);
}

TEST_F(InstallTest, InstallingTheSameVersionAgainCopiesNothing) {
  MustInstall(v1_, store1_);
  const ino_t inode = Stat(dest_ + "/game-server@1.0/bin/server").st_ino;
  const InstallResult again = MustInstall(v1_, store1_);
  EXPECT_TRUE(again.reused);
  EXPECT_FALSE(again.switched);
  EXPECT_EQ(again.copied.bytes, 0u);
  EXPECT_EQ(Stat(dest_ + "/game-server@1.0/bin/server").st_ino, inode);
  EXPECT_EQ(DiffTree(dest_ + "/current", v1_), "");
}

TEST_F(InstallTest, RollingBackReusesThePreviousVersion) {
  MustInstall(v1_, store1_);
  MustInstall(v2_, store2_);
  const InstallResult back = MustInstall(v1_, store1_);
  EXPECT_TRUE(back.reused);
  EXPECT_TRUE(back.switched);
  EXPECT_EQ(back.previous, "game-server@2.0");
  EXPECT_EQ(Readlink(dest_ + "/current"), "game-server@1.0");
}

TEST_F(InstallTest, EditingAnInstalledFileLeavesTheStoreCopyAlone) {
  const InstallResult result = MustInstall(v1_, store1_);
  const std::string installed = result.path + "/bin/server";
  const std::string stored = store1_ + "/bin/server";
  EXPECT_NE(Stat(installed).st_ino, Stat(stored).st_ino);
  ASSERT_EQ(chmod(installed.c_str(), 0644), 0);
  const int fd = open(installed.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(
      PwriteAll(fd, "patched by the application", 1000, installed).ok());
  close(fd);
  EXPECT_TRUE(ReadFile(stored, 1 << 30).value() == v1_.files()[1].content)
      << stored << " changed";
  EXPECT_FALSE(ReadFile(installed, 1 << 30).value() == v1_.files()[1].content);
  EXPECT_EQ(Stat(stored).st_mode & 07777, 0644u);
}

TEST_F(InstallTest, EveryCopyMethodCopiesTheSameBytes) {
  for (const CopyMethod first :
       {CopyMethod::kReflink, CopyMethod::kCopyFileRange,
        CopyMethod::kReadWrite}) {
    SCOPED_TRACE(CopyMethodName(first));
    const std::string dest = MakeTestDir("methods");
    RealFileCopier copier(first);
    absl::StatusOr<InstallResult> result =
        Installer(copier).Install(v1_.manifest(), store1_, dest, options_);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(DiffTree(result->path, v1_), "");
    uint32_t copied = 0;
    for (int m = 0; m < kNumCopyMethods; ++m) {
      // A method is never used before the one asked for first.
      if (m < static_cast<int>(first)) {
        EXPECT_EQ(result->copied.files_by_method[m], 0u) << m;
      }
      copied += result->copied.files_by_method[m];
    }
    EXPECT_EQ(copied, 4u);
  }
}

TEST_F(InstallTest, LeftoversOfAnInterruptedInstallAreRemoved) {
  ASSERT_TRUE(
      MakeDirs(dest_ + "/.shoal-partial.game-server@1.0.77-0/bin").ok());
  ASSERT_TRUE(WriteFileAtomically(
                  dest_ + "/.shoal-partial.game-server@1.0.77-0/bin/server",
                  "half", 0644, false)
                  .ok());
  ASSERT_TRUE(MakeDirs(dest_ + "/.shoal-trash.game-server@0.9.77-1").ok());
  ASSERT_EQ(
      symlink("game-server@0.9", (dest_ + "/.shoal-current.77-2").c_str()), 0);
  ASSERT_TRUE(
      WriteFileAtomically(dest_ + "/.profile", "mine", 0644, false).ok());
  ASSERT_TRUE(WriteFileAtomically(dest_ + "/notes", "mine", 0644, false).ok());

  MustInstall(v1_, store1_);
  EXPECT_EQ(Leftovers(dest_), std::set<std::string>{});
  EXPECT_EQ(ReadFile(dest_ + "/.profile", 100).value(), "mine");
  EXPECT_EQ(ReadFile(dest_ + "/notes", 100).value(), "mine");
}

TEST_F(InstallTest, RefusesACurrentThatIsNotASymlink) {
  ASSERT_TRUE(MakeDirs(dest_ + "/current").ok());
  ASSERT_TRUE(
      WriteFileAtomically(dest_ + "/current/data", "user", 0644, false).ok());
  absl::StatusOr<InstallResult> result =
      Install(v1_.manifest(), store1_, dest_, options_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(result.status().message(), dest_ + "/current"))
      << result.status();
  EXPECT_EQ(ReadFile(dest_ + "/current/data", 100).value(), "user");
  EXPECT_NE(access((dest_ + "/game-server@1.0").c_str(), F_OK), 0);

  ASSERT_TRUE(RemoveTree(dest_ + "/current").ok());
  ASSERT_TRUE(
      WriteFileAtomically(dest_ + "/current", "file", 0644, false).ok());
  result = Install(v1_.manifest(), store1_, dest_, options_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadFile(dest_ + "/current", 100).value(), "file");
  EXPECT_EQ(CurrentRelease(dest_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(InstallTest, RefusesADestThatIsNotADirectory) {
  ASSERT_TRUE(WriteFileAtomically(dest_, "file", 0644, false).ok());
  absl::StatusOr<InstallResult> result =
      Install(v1_.manifest(), store1_, dest_, options_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(result.status().message(), dest_));
  EXPECT_EQ(ReadFile(dest_, 100).value(), "file");
}

TEST_F(InstallTest, CreatesAMissingDest) {
  const std::string dest = root_ + "/a/b/c/";
  absl::StatusOr<InstallResult> result =
      Install(v1_.manifest(), store1_, dest, options_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->path, root_ + "/a/b/c/game-server@1.0");
  EXPECT_EQ(DiffTree(root_ + "/a/b/c/current", v1_), "");
}

TEST_F(InstallTest, IncompleteStoreIsRefusedAndChangesNothing) {
  MustInstall(v1_, store1_);
  ASSERT_EQ(truncate((store2_ + "/bin/server").c_str(), 1000), 0);
  absl::StatusOr<InstallResult> result =
      Install(v2_.manifest(), store2_, dest_, options_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(result.status().message(), "bin/server"))
      << result.status();
  EXPECT_EQ(Readlink(dest_ + "/current"), "game-server@1.0");
  EXPECT_NE(access((dest_ + "/game-server@2.0").c_str(), F_OK), 0);
  EXPECT_EQ(Leftovers(dest_), std::set<std::string>{});
}

TEST_F(InstallTest, RefusesAManifestThatUsesTheMarkerName) {
  const TestRelease bad("game-server", "3.0",
                        {{".shoal-release", "forged", 0644}});
  const std::string store = bad.WriteStore(root_ + "/bad");
  absl::StatusOr<InstallResult> result =
      Install(bad.manifest(), store, dest_, options_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(access(dest_.c_str(), F_OK), 0);
}

TEST_F(InstallTest, DamagedInstallIsReplacedByAFreshCopy) {
  MustInstall(v1_, store1_);
  ASSERT_EQ(truncate((dest_ + "/game-server@1.0/bin/server").c_str(), 10), 0);
  const InstallResult result = MustInstall(v1_, store1_);
  EXPECT_FALSE(result.reused);
  EXPECT_TRUE(result.replaced);
  EXPECT_FALSE(result.switched);
  EXPECT_EQ(DiffTree(dest_ + "/current", v1_), "");
  EXPECT_EQ(Leftovers(dest_), std::set<std::string>{});
}

TEST_F(InstallTest, AnotherSigningOfTheSameVersionIsReinstalled) {
  MustInstall(v1_, store1_);
  const TestRelease resigned("game-server", "1.0",
                             {{"bin/server", "fixed build", 0755}}, 2);
  const std::string store = resigned.WriteStore(root_ + "/resigned");
  const InstallResult result = MustInstall(resigned, store);
  EXPECT_TRUE(result.replaced);
  EXPECT_EQ(DiffTree(dest_ + "/current", resigned), "");
}

TEST_F(InstallTest, AForeignDirectoryOfTheSameNameIsMovedAsideNotDeleted) {
  ASSERT_TRUE(MakeDirs(dest_ + "/game-server@1.0").ok());
  ASSERT_TRUE(
      WriteFileAtomically(dest_ + "/game-server@1.0/mine", "x", 0644, false)
          .ok());
  const InstallResult result = MustInstall(v1_, store1_);
  EXPECT_TRUE(result.replaced);
  EXPECT_EQ(DiffTree(result.path, v1_), "");
  const std::set<std::string> left = Leftovers(dest_);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_TRUE(
      absl::StartsWith(*left.begin(), ".shoal-displaced.game-server@1.0."));
  EXPECT_TRUE(absl::EndsWith(*left.begin(), "/mine"));
  // Kept by later installs too.
  MustInstall(v2_, store2_);
  EXPECT_EQ(Leftovers(dest_), left);
}

TEST_F(InstallTest, FullDiskIsResourceExhaustedAndLeavesNothing) {
  FullDiskCopier copier;
  MustInstall(v1_, store1_);
  absl::StatusOr<InstallResult> result =
      Installer(copier).Install(v2_.manifest(), store2_, dest_, options_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(result.status().message(), dest_))
      << result.status();
  EXPECT_EQ(Readlink(dest_ + "/current"), "game-server@1.0");
  EXPECT_NE(access((dest_ + "/game-server@2.0").c_str(), F_OK), 0);
  EXPECT_EQ(Leftovers(dest_), std::set<std::string>{});
}

// The same on a real, small tmpfs, when this test may mount one (as root).
TEST_F(InstallTest, FullTmpfsIsResourceExhaustedAndLeavesNothing) {
  const std::string mnt = MakeTestDir("tmpfs");
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=512k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs: " << strerror(errno);
  }
  absl::Cleanup unmount = [&] {
    EXPECT_EQ(umount2(mnt.c_str(), MNT_DETACH), 0) << strerror(errno);
  };
  const TestRelease small("game-server", "1.0", {{"bin/server", "tiny", 0755}});
  const TestRelease big("game-server", "2.0",
                        {{"bin/server", RandomBytes(1 << 20, 9), 0755}});
  const std::string dest = mnt + "/dest";
  ASSERT_TRUE(Install(small.manifest(), small.WriteStore(root_ + "/small"),
                      dest, options_)
                  .ok());
  absl::StatusOr<InstallResult> result =
      Install(big.manifest(), big.WriteStore(root_ + "/big"), dest, options_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(result.status().message(), dest))
      << result.status();
  EXPECT_EQ(Readlink(dest + "/current"), "game-server@1.0");
  EXPECT_EQ(DiffTree(dest + "/current", small), "");
  EXPECT_EQ(Leftovers(dest), std::set<std::string>{});
}

TEST_F(InstallTest, RemovesOnlyInstalledVersionsThatAreNotCurrent) {
  MustInstall(v1_, store1_);
  MustInstall(v2_, store2_);
  EXPECT_EQ(RemoveInstalled(dest_, "game-server@2.0").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RemoveInstalled(dest_, "game-server@3.0").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(RemoveInstalled(dest_, "../store1").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RemoveInstalled(dest_, "current").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(MakeDirs(dest_ + "/other").ok());
  EXPECT_EQ(RemoveInstalled(dest_, "other").code(),
            absl::StatusCode::kFailedPrecondition);

  EXPECT_TRUE(RemoveInstalled(dest_, "game-server@1.0").ok());
  EXPECT_NE(access((dest_ + "/game-server@1.0").c_str(), F_OK), 0);
  const std::vector<InstalledVersion> left = ListInstalled(dest_).value();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].release, "game-server@2.0");
  EXPECT_TRUE(left[0].current);
  EXPECT_EQ(Leftovers(dest_), std::set<std::string>{});
}

TEST_F(InstallTest, ListingAMissingDestIsEmpty) {
  EXPECT_TRUE(ListInstalled(root_ + "/nothing").value().empty());
  EXPECT_EQ(CurrentRelease(root_ + "/nothing").value(), std::nullopt);
}

TEST_F(InstallTest, ConcurrentInstallsIntoOneDestAreSerialized) {
  std::vector<std::thread> threads;
  std::vector<absl::Status> errors(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        // Removing makes every other install copy again.
        const bool odd = (t + i) % 2 == 1;
        absl::StatusOr<InstallResult> result =
            Install(odd ? v2_.manifest() : v1_.manifest(),
                    odd ? store2_ : store1_, dest_, options_);
        if (!result.ok()) errors[t] = result.status();
        const absl::Status removed =
            RemoveInstalled(dest_, odd ? "game-server@1.0" : "game-server@2.0");
        if (!removed.ok() && removed.code() != absl::StatusCode::kNotFound &&
            removed.code() != absl::StatusCode::kFailedPrecondition) {
          errors[t] = removed;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& error : errors) EXPECT_TRUE(error.ok()) << error;
  const std::string current = Readlink(dest_ + "/current");
  EXPECT_EQ(
      DiffTree(dest_ + "/current", current == "game-server@1.0" ? v1_ : v2_),
      "");
  EXPECT_EQ(Leftovers(dest_), std::set<std::string>{});
}

// --- post_install ---

TEST_F(InstallTest, PostInstallGetsTheNewPath) {
  options_.post_install =
      "printf '%s|%s|%s' \"$1\" \"$SHOAL_INSTALL_PATH\" \"$SHOAL_RELEASE\" "
      "> \"$1/../hook.out\"; echo installed";
  const InstallResult result = MustInstall(v1_, store1_);
  ASSERT_TRUE(result.post_install.has_value());
  EXPECT_TRUE(result.post_install->ok()) << result.post_install->Describe();
  EXPECT_EQ(result.post_install->output, "installed\n");
  EXPECT_EQ(ReadFile(dest_ + "/hook.out", 10000).value(),
            result.path + "|" + result.path + "|game-server@1.0");
}

TEST_F(InstallTest, FailingPostInstallIsReportedAndDoesNotUndoTheSwitch) {
  options_.post_install = "echo boom >&2; exit 3";
  const InstallResult result = MustInstall(v1_, store1_);
  ASSERT_TRUE(result.post_install.has_value());
  EXPECT_FALSE(result.post_install->ok());
  EXPECT_EQ(result.post_install->outcome, PostInstallResult::Outcome::kExited);
  EXPECT_EQ(result.post_install->exit_code, 3);
  EXPECT_EQ(result.post_install->output, "boom\n");
  EXPECT_EQ(result.post_install->Describe(), "exited with status 3");
  EXPECT_EQ(Readlink(dest_ + "/current"), "game-server@1.0");
}

TEST_F(InstallTest, PostInstallKilledByASignalIsReported) {
  options_.post_install = "kill -TERM $$";
  const InstallResult result = MustInstall(v1_, store1_);
  ASSERT_TRUE(result.post_install.has_value());
  EXPECT_EQ(result.post_install->outcome, PostInstallResult::Outcome::kKilled);
  EXPECT_EQ(result.post_install->signal, SIGTERM);
}

TEST_F(InstallTest, PostInstallPastItsTimeoutIsKilled) {
  options_.post_install = "echo started; sleep 60";
  options_.post_install_timeout = absl::Milliseconds(200);
  const InstallResult result = MustInstall(v1_, store1_);
  ASSERT_TRUE(result.post_install.has_value());
  EXPECT_EQ(result.post_install->outcome,
            PostInstallResult::Outcome::kTimedOut);
  EXPECT_EQ(result.post_install->signal, SIGKILL);
  EXPECT_EQ(result.post_install->output, "started\n");
  EXPECT_LT(result.post_install->elapsed, absl::Seconds(30));
  EXPECT_EQ(Readlink(dest_ + "/current"), "game-server@1.0");
}

TEST(PostInstallTest, LongOutputKeepsItsTail) {
  PostInstallSpec spec;
  spec.command =
      "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done";
  spec.path = "/nowhere";
  spec.timeout = absl::Seconds(60);
  const PostInstallResult result = RunPostInstall(spec);
  EXPECT_TRUE(result.ok()) << result.Describe();
  EXPECT_EQ(result.output.size(), kPostInstallOutputBytes);
  EXPECT_TRUE(absl::EndsWith(result.output, "line 1999\n"));
}

}  // namespace
}  // namespace shoal::agent
