#include "agent/install.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

// Names of work in progress in DEST. The first three are only ever made
// and used under the DEST lock, so any found by a holder of the lock were
// left by a dead install and are removed. Displaced directories are kept.
constexpr absl::string_view kPartialPrefix = ".shoal-partial.";
constexpr absl::string_view kTrashPrefix = ".shoal-trash.";
constexpr absl::string_view kCurrentTmpPrefix = ".shoal-current.";
constexpr absl::string_view kDisplacedPrefix = ".shoal-displaced.";
constexpr uint64_t kMaxMarkerBytes = 4096;

std::string Join(absl::string_view dir, absl::string_view name) {
  return absl::StrCat(dir, "/", name);
}

// Unique among live processes: the pid and a count within this process.
// (Leftovers of a dead process that had the same pid are removed before
// anything new is made.)
std::string UniqueSuffix() {
  static std::atomic<uint64_t> next{0};
  return absl::StrCat(getpid(), "-", next.fetch_add(1));
}

absl::Status SyncFd(int fd, absl::string_view path) {
  if (fsync(fd) != 0) return ErrnoToStatus(errno, "cannot sync", path);
  return absl::OkStatus();
}

// Paths come validated from the manifest; they are checked again because
// a path that climbs out of DEST must never reach open() or mkdir().
absl::Status CheckPaths(const Manifest& manifest) {
  for (const v1::FileEntry& file : manifest.body().files()) {
    RETURN_IF_ERROR(ValidateRelativePath(file.path()));
    const absl::string_view first =
        absl::string_view(file.path()).substr(0, file.path().find('/'));
    if (first == kInstallMarker) {
      return absl::InvalidArgumentError(absl::StrCat(
          manifest.display_name(), " cannot be installed: its path \"",
          file.path(), "\" uses the name of the install marker ",
          kInstallMarker));
    }
  }
  return absl::OkStatus();
}

// Creates DEST if missing; refuses anything else than a directory there.
absl::Status PrepareDest(const std::string& dest) {
  struct stat st;
  if (stat(dest.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("install directory ", dest, " is not a directory"));
  }
  if (errno != ENOENT) {
    return ErrnoToStatus(errno, "cannot use install directory", dest);
  }
  return MakeDirs(dest);
}

// An open descriptor of DEST holding its exclusive flock; closing it
// releases the lock. Also used to fsync DEST.
absl::StatusOr<int> LockDest(const std::string& dest) {
  const int fd = open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open directory", dest);
  while (flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    const int err = errno;
    close(fd);
    return ErrnoToStatus(err, "cannot lock", dest);
  }
  return fd;
}

absl::StatusOr<std::optional<std::string>> ReadCurrent(
    const std::string& dest) {
  const std::string link = Join(dest, kCurrentLink);
  struct stat st;
  if (lstat(link.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    return ErrnoToStatus(errno, "cannot stat", link);
  }
  if (!S_ISLNK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        link,
        " exists and is not a symlink; installs switch versions by "
        "replacing a symlink there and never remove a file or "
        "directory: move it away"));
  }
  char target[PATH_MAX];
  const ssize_t n = readlink(link.c_str(), target, sizeof(target));
  if (n < 0) return ErrnoToStatus(errno, "cannot read symlink", link);
  return std::string(target, static_cast<size_t>(n));
}

// The release id in a version directory's marker.
absl::StatusOr<std::string> ReadMarker(const std::string& dir) {
  const std::string marker = Join(dir, kInstallMarker);
  struct stat st;
  if (lstat(marker.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, "cannot stat", marker);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(marker, " is not a regular file"));
  }
  ASSIGN_OR_RETURN(const std::string text, ReadFile(marker, kMaxMarkerBytes));
  return std::string(text.substr(0, text.find('\n')));
}

// Removes the entries that dead installs left in DEST. Failures are logged:
// they cost space, not correctness, and the next install tries again.
void RemoveLeftovers(const std::string& dest) {
  DIR* dir = opendir(dest.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> names;
  while (const struct dirent* entry = readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (absl::StartsWith(name, kPartialPrefix) ||
        absl::StartsWith(name, kTrashPrefix) ||
        absl::StartsWith(name, kCurrentTmpPrefix)) {
      names.emplace_back(name);
    }
  }
  closedir(dir);
  for (const std::string& name : names) {
    const absl::Status status = RemoveTree(Join(dest, name));
    if (status.ok()) {
      LOG(INFO) << "removed " << Join(dest, name)
                << ", left by an interrupted install";
    } else {
      LOG(WARNING) << "cannot remove what an interrupted install left: "
                   << status;
    }
  }
}

enum class DirState { kAbsent, kComplete, kStale, kForeign };

// What DEST/<release> holds for `manifest` (see "complete" in install.h).
absl::StatusOr<DirState> Inspect(const std::string& dir,
                                 const Manifest& manifest) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return DirState::kAbsent;
    return ErrnoToStatus(errno, "cannot stat", dir);
  }
  if (!S_ISDIR(st.st_mode)) return DirState::kForeign;
  const absl::StatusOr<std::string> id = ReadMarker(dir);
  if (!id.ok()) return DirState::kForeign;
  if (*id != manifest.release_id()) return DirState::kStale;
  for (const v1::FileEntry& file : manifest.body().files()) {
    if (lstat(Join(dir, file.path()).c_str(), &st) != 0 ||
        !S_ISREG(st.st_mode) ||
        static_cast<uint64_t>(st.st_size) != file.size()) {
      return DirState::kStale;
    }
  }
  return DirState::kComplete;
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("cannot rename ", from, " to"),
                         to);
  }
  return absl::OkStatus();
}

// Puts the complete tree at `partial` in place at `final_dir`, whose
// current state is `state`. On error `partial` still holds the new tree.
absl::Status Place(const std::string& dest, const std::string& partial,
                   const std::string& final_dir, const std::string& release,
                   DirState state) {
  if (state == DirState::kAbsent) return Rename(partial, final_dir);
  if (state == DirState::kForeign) {
    // Moved aside before anything else, so that no crash can leave the
    // owner's directory under a name that cleaning removes.
    const std::string aside = Join(
        dest, absl::StrCat(kDisplacedPrefix, release, ".", UniqueSuffix()));
    RETURN_IF_ERROR(Rename(final_dir, aside));
    LOG(WARNING) << final_dir << " was not installed by shoal; moved to "
                 << aside << " to make room for " << release;
    return Rename(partial, final_dir);
  }
  // Stale: ours, so deleting it is fine. The exchange keeps the name
  // occupied throughout; afterwards `partial` holds the old tree.
  std::string old = partial;
  if (renameat2(AT_FDCWD, partial.c_str(), AT_FDCWD, final_dir.c_str(),
                RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
      return ErrnoToStatus(
          errno, absl::StrCat("cannot exchange ", partial, " with"), final_dir);
    }
    old = Join(dest, absl::StrCat(kTrashPrefix, release, ".", UniqueSuffix()));
    RETURN_IF_ERROR(Rename(final_dir, old));
    RETURN_IF_ERROR(Rename(partial, final_dir));
  }
  const absl::Status removed = RemoveTree(old);
  if (!removed.ok()) {
    LOG(WARNING) << "cannot remove the replaced copy of " << release << ": "
                 << removed;
  }
  return absl::OkStatus();
}

// Points DEST/current at `release` unless it already does. True if it
// changed.
absl::StatusOr<bool> SwitchCurrent(const std::string& dest,
                                   const std::string& release,
                                   const std::string& previous) {
  if (previous == release) return false;
  const std::string tmp =
      Join(dest, absl::StrCat(kCurrentTmpPrefix, UniqueSuffix()));
  if (symlink(release.c_str(), tmp.c_str()) != 0) {
    return ErrnoToStatus(errno, "cannot create symlink", tmp);
  }
  const absl::Status status = Rename(tmp, Join(dest, kCurrentLink));
  if (!status.ok()) unlink(tmp.c_str());
  RETURN_IF_ERROR(status);
  return true;
}

std::string TrimTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// The part of an install done under the DEST lock (`dest_fd`).
absl::Status InstallLocked(FileCopier& copier, const Manifest& manifest,
                           const std::string& store_data_dir,
                           const std::string& dest, int dest_fd, bool durable,
                           InstallResult& result) {
  ASSIGN_OR_RETURN(const std::optional<std::string> previous,
                   ReadCurrent(dest));
  result.previous = previous.value_or("");
  RemoveLeftovers(dest);
  ASSIGN_OR_RETURN(const DirState state, Inspect(result.path, manifest));
  if (state == DirState::kComplete) {
    result.reused = true;
  } else {
    const std::string partial =
        Join(dest,
             absl::StrCat(kPartialPrefix, result.release, ".", UniqueSuffix()));
    absl::Status status = CopyReleaseTree(
        copier, manifest, store_data_dir, partial, kInstallMarker,
        absl::StrCat(manifest.release_id(), "\n", manifest.display_name(),
                     "\n"),
        durable, result.copied);
    if (status.ok()) {
      status = Place(dest, partial, result.path, result.release, state);
    }
    if (!status.ok()) {
      const absl::Status removed = RemoveTree(partial);
      if (!removed.ok()) LOG(WARNING) << removed;
      return status;
    }
    result.replaced = state != DirState::kAbsent;
    if (durable) RETURN_IF_ERROR(SyncFd(dest_fd, dest));
  }
  ASSIGN_OR_RETURN(result.switched,
                   SwitchCurrent(dest, result.release, result.previous));
  if (durable && result.switched) RETURN_IF_ERROR(SyncFd(dest_fd, dest));
  return absl::OkStatus();
}

// OK if `release` names an entry directly in DEST that may be a version.
absl::Status CheckReleaseName(absl::string_view release) {
  if (release.empty() || release[0] == '.' ||
      release.find('/') != absl::string_view::npos || release == kCurrentLink) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", release, "\" is not an installed version's name"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<InstallResult> Installer::Install(
    const Manifest& manifest, const std::string& store_data_dir,
    const std::string& dest_dir, const InstallOptions& options) const {
  if (dest_dir.empty()) {
    return absl::InvalidArgumentError("no install directory given");
  }
  RETURN_IF_ERROR(CheckPaths(manifest));
  const std::string dest = TrimTrailingSlashes(dest_dir);
  InstallResult result;
  result.release = manifest.display_name();
  result.path = Join(dest, result.release);
  RETURN_IF_ERROR(PrepareDest(dest));
  {
    ASSIGN_OR_RETURN(const int lock, LockDest(dest));
    absl::Cleanup unlock = [lock] { close(lock); };
    RETURN_IF_ERROR(InstallLocked(copier_, manifest, store_data_dir, dest, lock,
                                  options.durable, result));
  }
  if (!options.post_install.empty()) {
    PostInstallSpec spec;
    spec.command = options.post_install;
    spec.path = result.path;
    spec.env = {{"SHOAL_RELEASE", result.release},
                {"SHOAL_RELEASE_ID", manifest.release_id()}};
    spec.timeout = options.post_install_timeout;
    result.post_install = RunPostInstall(spec);
    LOG(INFO) << "post_install for " << result.release << " "
              << result.post_install->Describe();
  }
  return result;
}

absl::StatusOr<InstallResult> Install(const Manifest& manifest,
                                      const std::string& store_data_dir,
                                      const std::string& dest_dir,
                                      const InstallOptions& options) {
  static RealFileCopier* const copier = new RealFileCopier;
  return Installer(*copier).Install(manifest, store_data_dir, dest_dir,
                                    options);
}

absl::StatusOr<std::optional<std::string>> CurrentRelease(
    const std::string& dest_dir) {
  return ReadCurrent(TrimTrailingSlashes(dest_dir));
}

absl::StatusOr<std::vector<InstalledVersion>> ListInstalled(
    const std::string& dest_dir) {
  const std::string dest = TrimTrailingSlashes(dest_dir);
  ASSIGN_OR_RETURN(const std::optional<std::string> current, ReadCurrent(dest));
  std::vector<InstalledVersion> out;
  DIR* dir = opendir(dest.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return out;
    return ErrnoToStatus(errno, "cannot list", dest);
  }
  std::vector<std::string> names;
  while (const struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') names.emplace_back(entry->d_name);
  }
  closedir(dir);
  for (const std::string& name : names) {
    const std::string path = Join(dest, name);
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    absl::StatusOr<std::string> id = ReadMarker(path);
    if (!id.ok()) continue;
    out.push_back({name, std::move(*id), current == name});
  }
  std::sort(out.begin(), out.end(),
            [](const InstalledVersion& a, const InstalledVersion& b) {
              return a.release < b.release;
            });
  return out;
}

absl::Status RemoveInstalled(const std::string& dest_dir,
                             absl::string_view release) {
  RETURN_IF_ERROR(CheckReleaseName(release));
  const std::string dest = TrimTrailingSlashes(dest_dir);
  const std::string path = Join(dest, release);
  ASSIGN_OR_RETURN(const int lock, LockDest(dest));
  absl::Cleanup unlock = [lock] { close(lock); };
  ASSIGN_OR_RETURN(const std::optional<std::string> current, ReadCurrent(dest));
  if (current == release) {
    return absl::FailedPreconditionError(
        absl::StrCat(release, " is the current version in ", dest,
                     "; install another one first"));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, "cannot stat", path);
  }
  if (!S_ISDIR(st.st_mode) || !ReadMarker(path).ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " was not installed by shoal (no ", kInstallMarker,
                     "); not removing it"));
  }
  const std::string trash =
      Join(dest, absl::StrCat(kTrashPrefix, release, ".", UniqueSuffix()));
  RETURN_IF_ERROR(Rename(path, trash));
  RETURN_IF_ERROR(SyncFd(lock, dest));
  return RemoveTree(trash);
}

}  // namespace shoal::agent
