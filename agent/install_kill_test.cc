// Install atomicity under kill -9: whatever moment an install dies at, the
// install path holds one complete version or none.

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/install.h"
#include "agent/install_files.h"
#include "agent/install_test_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

using install_testing::DiffTree;
using install_testing::RandomBytes;
using install_testing::TestRelease;

constexpr int kKills = 30;
// Installs one child may do before giving up on being killed; far more
// than fit in the longest delay before the kill.
constexpr int kMaxInstallsPerChild = 2000;

TestRelease Big(const std::string& version, uint32_t seed) {
  return TestRelease("game-server", version,
                     {{"bin/server", RandomBytes(3 << 20, seed), 0755},
                      {"data/assets.pak", RandomBytes(2 << 20, seed + 1), 0644},
                      {"lib/libgame.so", RandomBytes(1 << 20, seed + 2), 0755},
                      {"server.conf", "version " + version + "\n", 0640}});
}

// Copies half of the `die_at`-th file it is asked for, then kills its own
// process: a death inside a copy at a chosen step, independent of timing.
class DyingCopier final : public FileCopier {
 public:
  explicit DyingCopier(int die_at) : die_at_(die_at) {}

  absl::StatusOr<CopyMethod> Copy(int src, int dst, uint64_t size,
                                  const std::string& src_path,
                                  const std::string& dst_path) override {
    if (calls_++ == die_at_) {
      (void)RealFileCopier(CopyMethod::kReadWrite)
          .Copy(src, dst, size / 2, src_path, dst_path);
      kill(getpid(), SIGKILL);
    }
    return real_.Copy(src, dst, size, src_path, dst_path);
  }

 private:
  const int die_at_;
  int calls_ = 0;
  RealFileCopier real_;
};

// The child: installs the versions in turn, each time removing the others,
// so that every install copies again. Writes a byte to
// `done_fd` after each completed install. Never returns.
[[noreturn]] void InstallUntilKilled(const std::vector<TestRelease>& releases,
                                     const std::vector<std::string>& stores,
                                     const std::string& dest, int first,
                                     bool durable, int die_at, int done_fd) {
  RealFileCopier real;
  DyingCopier dying(die_at);
  const Installer installer(die_at >= 0 ? static_cast<FileCopier&>(dying)
                                        : static_cast<FileCopier&>(real));
  InstallOptions options;
  options.durable = durable;
  const size_t n = releases.size();
  for (int i = 0; i < kMaxInstallsPerChild; ++i) {
    const size_t k = (first + i) % n;
    if (!installer.Install(releases[k].manifest(), stores[k], dest, options)
             .ok()) {
      _exit(2);
    }
    if (write(done_fd, "i", 1) != 1) _exit(3);
    for (size_t j = 0; j < n; ++j) {
      if (j == k) continue;
      const absl::Status removed = RemoveInstalled(dest, releases[j].release());
      if (!removed.ok() && removed.code() != absl::StatusCode::kNotFound) {
        _exit(4);
      }
    }
  }
  _exit(0);
}

// Checks what an application could see in `dest`: `current` absent (only
// while no install has completed) or naming a complete version, and every
// visible version directory complete.
void ExpectOnlyCompleteVersions(const std::string& dest,
                                const std::vector<TestRelease>& releases,
                                bool any_completed) {
  auto find = [&](const std::string& name) -> const TestRelease* {
    for (const TestRelease& r : releases) {
      if (r.release() == name) return &r;
    }
    return nullptr;
  };
  const std::string current = dest + "/current";
  struct stat st;
  if (lstat(current.c_str(), &st) != 0) {
    EXPECT_FALSE(any_completed) << "current vanished after an install";
  } else {
    ASSERT_TRUE(S_ISLNK(st.st_mode));
    const absl::StatusOr<std::optional<std::string>> target =
        CurrentRelease(dest);
    ASSERT_TRUE(target.ok() && target->has_value()) << target.status();
    const TestRelease* release = find(**target);
    ASSERT_NE(release, nullptr) << "current names " << **target;
    EXPECT_EQ(DiffTree(current, *release), "");
  }
  std::set<std::string> names;
  install_testing::ListTree(dest, "", names);
  std::set<std::string> visible;
  for (const std::string& path : names) {
    if (path[0] != '.') visible.insert(path.substr(0, path.find('/')));
  }
  for (const std::string& name : visible) {
    if (name == "?current") continue;
    const TestRelease* release = find(name);
    ASSERT_NE(release, nullptr) << "unexpected entry " << name;
    EXPECT_EQ(DiffTree(dest + "/" + name, *release), "");
  }
}

TEST(InstallKillTest, InstallPathHoldsOneCompleteVersionOrNone) {
  const std::string root = MakeTestDir("install_kill");
  const std::string dest = root + "/dest";
  const std::vector<TestRelease> releases = {Big("1.0", 10), Big("2.0", 20),
                                             Big("3.0", 30)};
  std::vector<std::string> stores;
  for (const TestRelease& r : releases) {
    stores.push_back(r.WriteStore(root + "/store-" + r.release()));
  }
  std::mt19937 rng(20241124);
  bool any_completed = false;
  int with_leftovers = 0;
  for (int round = 0; round < kKills; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    // Odd rounds die inside a chosen copy; even rounds at a random moment
    // of the parent's choosing, which may fall anywhere (a rename, the
    // switch, the cleanup, a removal).
    const int die_at =
        round % 2 == 1 ? std::uniform_int_distribution<int>(0, 11)(rng) : -1;
    const int delay_us = std::uniform_int_distribution<int>(0, 150000)(rng);
    int done[2];
    ASSERT_EQ(pipe(done), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(done[0]);
      InstallUntilKilled(releases, stores, dest, round, round % 3 != 0, die_at,
                         done[1]);
    }
    close(done[1]);
    if (die_at < 0) {
      // Picks the moment only; nothing below depends on where it fell.
      usleep(delay_us);
      kill(pid, SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child ended on its own with status " << status;
    char buffer[4096];
    ssize_t n;
    while ((n = read(done[0], buffer, sizeof(buffer))) > 0) {
      any_completed = true;
    }
    close(done[0]);
    ExpectOnlyCompleteVersions(dest, releases, any_completed);
    if (HasFatalFailure()) return;
    std::set<std::string> names;
    install_testing::ListTree(dest, "", names);
    for (const std::string& path : names) {
      if (absl::StartsWith(path, ".shoal-")) {
        ++with_leftovers;
        break;
      }
    }
  }
  std::cerr << with_leftovers << " of " << kKills
            << " kills left an install half done\n";
  RecordProperty("kills_with_leftovers", with_leftovers);

  // The next install finishes the job and cleans up after the dead ones.
  InstallOptions options;
  absl::StatusOr<InstallResult> result =
      Install(releases[0].manifest(), stores[0], dest, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(DiffTree(dest + "/current", releases[0]), "");
  std::set<std::string> names;
  install_testing::ListTree(dest, "", names);
  for (const std::string& path : names) {
    EXPECT_FALSE(absl::StartsWith(path, ".shoal-")) << path;
  }
}

}  // namespace
}  // namespace shoal::agent
