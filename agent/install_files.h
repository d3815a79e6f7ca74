#pragma once

// File-level pieces of the install step (agent/install.h): copying one file's
// bytes as cheaply as the filesystem allows, behind a seam that tests replace
// to force a fallback or a full disk; copying a release's files into a new
// directory tree; and removing a directory tree without following symlinks.
//
// Errors follow ErrnoToStatus (common/file_util.h): RESOURCE_EXHAUSTED for
// ENOSPC/EDQUOT, INTERNAL for EIO and anything unexpected; messages name the
// path.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/manifest.h"

namespace shoal::agent {

// How a file's bytes were copied, fastest first.
enum class CopyMethod {
  // ioctl(FICLONE): the copy shares the source's blocks, copy-on-write
  // (btrfs, XFS with reflink, bcachefs). No bytes move.
  kReflink = 0,
  // copy_file_range(2): the kernel copies, without a trip through user space
  // (and NFS or CIFS may copy server-side).
  kCopyFileRange = 1,
  // pread/pwrite through a buffer: works everywhere.
  kReadWrite = 2,
};
inline constexpr int kNumCopyMethods = 3;

// "reflink", "copy_file_range", "read_write".
absl::string_view CopyMethodName(CopyMethod method);

// Copies the contents of one open file into another. Implementations are
// thread-safe.
class FileCopier {
 public:
  virtual ~FileCopier() = default;

  // Copies the first `size` bytes of `src` (open for reading) into `dst`
  // (open for writing, empty), both from offset 0, and says how. The paths
  // only name the files in errors. DATA_LOSS if `src` ends before `size`
  // bytes; filesystem errors otherwise, naming `dst` (RESOURCE_EXHAUSTED
  // when the disk is full). After an error `dst` holds some prefix.
  virtual absl::StatusOr<CopyMethod> Copy(int src, int dst, uint64_t size,
                                          const std::string& src_path,
                                          const std::string& dst_path) = 0;
};

// The real filesystem: tries `first` and each slower method after it, moving
// on when the filesystem says a method is unsupported (EOPNOTSUPP, EXDEV,
// EINVAL, ...) and stopping at a real error. Stateless and thread-safe.
class RealFileCopier : public FileCopier {
 public:
  explicit RealFileCopier(CopyMethod first = CopyMethod::kReflink)
      : first_(first) {}

  absl::StatusOr<CopyMethod> Copy(int src, int dst, uint64_t size,
                                  const std::string& src_path,
                                  const std::string& dst_path) override;

 private:
  const CopyMethod first_;
};

// What copying a release's files did.
struct CopyStats {
  // Non-empty files copied by each method, indexed by CopyMethod (empty
  // files are created, not copied).
  uint32_t files_by_method[kNumCopyMethods] = {0, 0, 0};
  uint64_t bytes = 0;
};

// Copies `manifest`'s files from `store_dir` into the new directory `root`
// (created mode 0700, left 0755, so its contents are not readable while
// incomplete): each file with its manifest mode, the directories leading to
// them with mode 0755 whatever the umask, and a file `marker_name` (mode
// 0644) holding `marker`. With `durable`, every file and directory is
// fsynced (not `root`'s parent). The manifest's paths must have been checked
// with ValidateRelativePath and must not use `marker_name`. Errors:
// FAILED_PRECONDITION if a store file is missing or not a regular file of
// its signed size ("the store is not complete"); ALREADY_EXISTS if `root`
// exists; filesystem errors otherwise. On error `root` holds a part, for the
// caller to remove. Adds to `stats`.
absl::Status CopyReleaseTree(FileCopier& copier, const Manifest& manifest,
                             const std::string& store_dir,
                             const std::string& root,
                             absl::string_view marker_name,
                             absl::string_view marker, bool durable,
                             CopyStats& stats);

// Removes `path` and, if it is a directory, everything under it. Never
// follows a symlink: a symlink is removed, not what it points to. OK if
// `path` does not exist. On error, what could be removed is gone and the
// error names the first entry that could not be.
absl::Status RemoveTree(const std::string& path);

}  // namespace shoal::agent
