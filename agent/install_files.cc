#include "agent/install_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace shoal::agent {
namespace {

// Largest single copy_file_range request; the kernel copies less anyway.
constexpr uint64_t kMaxRangeChunk = uint64_t{1} << 30;
// Buffer of the read/write fallback.
constexpr size_t kCopyBuffer = size_t{1} << 20;

// True for errors by which a filesystem (or a kernel, or a seccomp policy)
// says it cannot do a clone or an in-kernel copy between these two files,
// as opposed to an I/O error or a full disk.
bool Unsupported(int err) {
  switch (err) {
    case EOPNOTSUPP:
    case ENOTTY:
    case EXDEV:
    case EINVAL:
    case ENOSYS:
    case EPERM:
    case EBADF:
      return true;
    default:
      return false;
  }
}

absl::Status CopyError(int err, const std::string& src_path,
                       const std::string& dst_path) {
  return ErrnoToStatus(err, absl::StrCat("cannot copy ", src_path, " to"),
                       dst_path);
}

// Copies [*done, size) with copy_file_range. OK with *done < size when the
// kernel refuses the pair of files, so that the caller continues another way.
absl::Status CopyWithRange(int src, int dst, uint64_t size, uint64_t* done,
                           const std::string& src_path,
                           const std::string& dst_path) {
  while (*done < size) {
    loff_t in = static_cast<loff_t>(*done);
    loff_t out = static_cast<loff_t>(*done);
    const ssize_t n = copy_file_range(
        src, &in, dst, &out, std::min(size - *done, kMaxRangeChunk), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (Unsupported(errno)) return absl::OkStatus();
      return CopyError(errno, src_path, dst_path);
    }
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat(src_path, " ended at byte ", *done, " of ", size));
    }
    *done += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status CopyWithBuffer(int src, int dst, uint64_t size, uint64_t done,
                            const std::string& src_path,
                            const std::string& dst_path) {
  const size_t buffer_size =
      static_cast<size_t>(std::min<uint64_t>(size - done, kCopyBuffer));
  std::unique_ptr<char[]> buffer(new char[buffer_size]);
  while (done < size) {
    const uint64_t n = std::min<uint64_t>(size - done, buffer_size);
    RETURN_IF_ERROR(PreadExact(src, buffer.get(), n, done, src_path));
    RETURN_IF_ERROR(
        PwriteAll(dst, absl::string_view(buffer.get(), n), done, dst_path));
    done += n;
  }
  return absl::OkStatus();
}

// Removes entry `name` of the open directory `parent` (whose path is
// `parent_path`), recursing into it if it is a directory.
absl::Status RemoveAt(int parent, const std::string& name,
                      const std::string& parent_path) {
  const std::string path = absl::StrCat(parent_path, "/", name);
  if (unlinkat(parent, name.c_str(), 0) == 0 || errno == ENOENT) {
    return absl::OkStatus();
  }
  if (errno != EISDIR && errno != EPERM) {
    return ErrnoToStatus(errno, "cannot remove", path);
  }
  const int fd = openat(parent, name.c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open directory", path);
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    const int err = errno;
    close(fd);
    return ErrnoToStatus(err, "cannot list", path);
  }
  absl::Cleanup closer = [dir] { closedir(dir); };
  // Names first, removals after: readdir's view of a directory being
  // changed under it is unspecified.
  std::vector<std::string> names;
  errno = 0;
  while (const struct dirent* entry = readdir(dir)) {
    const std::string entry_name = entry->d_name;
    if (entry_name != "." && entry_name != "..") names.push_back(entry_name);
  }
  if (errno != 0) return ErrnoToStatus(errno, "cannot list", path);
  for (const std::string& entry_name : names) {
    RETURN_IF_ERROR(RemoveAt(dirfd(dir), entry_name, path));
  }
  if (unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, "cannot remove directory", path);
  }
  return absl::OkStatus();
}

std::string Join(absl::string_view dir, absl::string_view name) {
  return absl::StrCat(dir, "/", name);
}

absl::Status SyncFd(int fd, absl::string_view path) {
  if (fsync(fd) != 0) return ErrnoToStatus(errno, "cannot sync", path);
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open directory", dir);
  absl::Cleanup closer = [fd] { close(fd); };
  return SyncFd(fd, dir);
}

// Builds one release's tree in a fresh directory (see CopyReleaseTree).
class TreeBuilder {
 public:
  TreeBuilder(FileCopier& copier, const std::string& store,
              const std::string& root, bool durable, CopyStats& stats)
      : copier_(copier),
        store_(store),
        root_(root),
        durable_(durable),
        stats_(stats) {}

  absl::Status Build(const Manifest& manifest, absl::string_view marker_name,
                     absl::string_view marker) {
    if (mkdir(root_.c_str(), 0700) != 0) {
      return ErrnoToStatus(errno, "cannot create directory", root_);
    }
    for (const v1::FileEntry& file : manifest.body().files()) {
      RETURN_IF_ERROR(MakeParents(file.path()));
      RETURN_IF_ERROR(CopyFile(file));
    }
    RETURN_IF_ERROR(WriteMarker(marker_name, marker));
    if (chmod(root_.c_str(), 0755) != 0) {
      return ErrnoToStatus(errno, "cannot set the mode of", root_);
    }
    if (!durable_) return absl::OkStatus();
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      RETURN_IF_ERROR(SyncDirectory(*it));
    }
    return SyncDirectory(root_);
  }

 private:
  // Creates the directories leading to `path` (mode 0755 whatever the
  // umask), each once.
  absl::Status MakeParents(absl::string_view path) {
    for (size_t slash = path.find('/'); slash != absl::string_view::npos;
         slash = path.find('/', slash + 1)) {
      const std::string dir = Join(root_, path.substr(0, slash));
      if (!made_.insert(dir).second) continue;
      if (mkdir(dir.c_str(), 0755) != 0) {
        return ErrnoToStatus(errno, "cannot create directory", dir);
      }
      if (chmod(dir.c_str(), 0755) != 0) {
        return ErrnoToStatus(errno, "cannot set the mode of", dir);
      }
      dirs_.push_back(dir);
    }
    return absl::OkStatus();
  }

  absl::Status CopyFile(const v1::FileEntry& file) {
    const std::string src = Join(store_, file.path());
    const std::string dst = Join(root_, file.path());
    const int in = open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("the store is not complete: ",
                       ErrnoToStatus(errno, "cannot open", src).message()));
    }
    absl::Cleanup close_in = [in] { close(in); };
    struct stat st;
    if (fstat(in, &st) != 0) return ErrnoToStatus(errno, "cannot stat", src);
    if (!S_ISREG(st.st_mode) ||
        static_cast<uint64_t>(st.st_size) != file.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the store is not complete: ", src,
                       " is not a regular file of ", file.size(), " bytes"));
    }
    const int out =
        open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
             0600);
    if (out < 0) return ErrnoToStatus(errno, "cannot create", dst);
    absl::Cleanup close_out = [out] { close(out); };
    RETURN_IF_ERROR(CopyBytes(in, out, file.size(), src, dst));
    // After the bytes: writing clears set-user-ID and set-group-ID bits.
    if (fchmod(out, file.mode()) != 0) {
      return ErrnoToStatus(errno, "cannot set the mode of", dst);
    }
    if (durable_) RETURN_IF_ERROR(SyncFd(out, dst));
    return absl::OkStatus();
  }

  absl::Status CopyBytes(int in, int out, uint64_t size, const std::string& src,
                         const std::string& dst) {
    if (size == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(const CopyMethod method,
                     copier_.Copy(in, out, size, src, dst));
    struct stat st;
    if (fstat(out, &st) != 0) return ErrnoToStatus(errno, "cannot stat", dst);
    if (static_cast<uint64_t>(st.st_size) != size) {
      return absl::InternalError(absl::StrCat("copying ", src, " left ", dst,
                                              " with ", st.st_size,
                                              " bytes instead of ", size));
    }
    ++stats_.files_by_method[static_cast<int>(method)];
    stats_.bytes += size;
    return absl::OkStatus();
  }

  absl::Status WriteMarker(absl::string_view name, absl::string_view marker) {
    const std::string path = Join(root_, name);
    const int fd =
        open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
             0644);
    if (fd < 0) return ErrnoToStatus(errno, "cannot create", path);
    absl::Cleanup closer = [fd] { close(fd); };
    RETURN_IF_ERROR(PwriteAll(fd, marker, 0, path));
    if (fchmod(fd, 0644) != 0) {
      return ErrnoToStatus(errno, "cannot set the mode of", path);
    }
    return durable_ ? SyncFd(fd, path) : absl::OkStatus();
  }

  FileCopier& copier_;
  const std::string& store_;
  const std::string& root_;
  const bool durable_;
  CopyStats& stats_;
  absl::flat_hash_set<std::string> made_;
  std::vector<std::string> dirs_;  // parents before children
};

}  // namespace

absl::string_view CopyMethodName(CopyMethod method) {
  switch (method) {
    case CopyMethod::kReflink:
      return "reflink";
    case CopyMethod::kCopyFileRange:
      return "copy_file_range";
    case CopyMethod::kReadWrite:
      return "read_write";
  }
  return "unknown";
}

absl::StatusOr<CopyMethod> RealFileCopier::Copy(int src, int dst, uint64_t size,
                                                const std::string& src_path,
                                                const std::string& dst_path) {
  if (first_ == CopyMethod::kReflink) {
    // A clone takes the whole source, so it is only right when the source
    // is exactly `size` bytes; the installer checked that.
    if (ioctl(dst, FICLONE, src) == 0) return CopyMethod::kReflink;
    if (!Unsupported(errno)) return CopyError(errno, src_path, dst_path);
  }
  uint64_t done = 0;
  if (first_ != CopyMethod::kReadWrite) {
    RETURN_IF_ERROR(CopyWithRange(src, dst, size, &done, src_path, dst_path));
    if (done == size) return CopyMethod::kCopyFileRange;
  }
  RETURN_IF_ERROR(CopyWithBuffer(src, dst, size, done, src_path, dst_path));
  return CopyMethod::kReadWrite;
}

absl::Status CopyReleaseTree(FileCopier& copier, const Manifest& manifest,
                             const std::string& store_dir,
                             const std::string& root,
                             absl::string_view marker_name,
                             absl::string_view marker, bool durable,
                             CopyStats& stats) {
  return TreeBuilder(copier, store_dir, root, durable, stats)
      .Build(manifest, marker_name, marker);
}

absl::Status RemoveTree(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string parent = slash == std::string::npos
                                 ? "."
                                 : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string name =
      slash == std::string::npos ? path : path.substr(slash + 1);
  const int fd = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(errno, "cannot open directory", parent);
  }
  absl::Cleanup closer = [fd] { close(fd); };
  return RemoveAt(fd, name, parent);
}

}  // namespace shoal::agent
