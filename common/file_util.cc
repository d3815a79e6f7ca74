#include "common/file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace shoal {
namespace {

// The directory part of `path`: "." for a bare name, "/" for "/name".
std::string ParentDirectory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

absl::Status ErrnoToStatus(int err, absl::string_view what,
                           absl::string_view path) {
  std::string msg = absl::StrCat(what, " ", path, ": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case ENOTDIR:
    case ENAMETOOLONG:
    case ELOOP:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     uint64_t max_size) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open", path);
  absl::Cleanup closer = [fd] { close(fd); };
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoToStatus(errno, "cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is ", st.st_size, " bytes, more than the limit of ", max_size));
  }
  std::string out(st.st_size, '\0');
  RETURN_IF_ERROR(PreadExact(fd, out.data(), out.size(), 0, path));
  return out;
}

absl::Status MakeDirs(const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(MakeDirs(path.substr(0, slash)));
  }
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, "cannot create directory", path);
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents, uint32_t mode,
                                 bool durable) {
  const std::string dir = ParentDirectory(path);
  absl::BitGen gen;
  std::string tmp = absl::StrCat(dir, "/.tmp-", absl::Uniform<uint64_t>(gen));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoToStatus(errno, "cannot create", tmp);
  bool renamed = false;
  absl::Cleanup cleanup = [&] {
    if (fd >= 0) close(fd);
    if (!renamed) unlink(tmp.c_str());
  };
  RETURN_IF_ERROR(PwriteAll(fd, contents, 0, tmp));
  if (durable && fsync(fd) != 0) return ErrnoToStatus(errno, "cannot fsync", tmp);
  if (close(fd) != 0) {
    fd = -1;
    return ErrnoToStatus(errno, "cannot close", tmp);
  }
  fd = -1;
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoToStatus(errno, "cannot rename into place", path);
  }
  renamed = true;
  return durable ? SyncParentDirectory(path) : absl::OkStatus();
}

absl::Status SyncParentDirectory(const std::string& path) {
  const std::string dir = ParentDirectory(path);
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open directory", dir);
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return ErrnoToStatus(err, "cannot fsync directory", dir);
  return absl::OkStatus();
}

absl::Status PwriteAll(int fd, absl::string_view data, uint64_t offset,
                       absl::string_view path_for_errors) {
  while (!data.empty()) {
    ssize_t n = pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "cannot write", path_for_errors);
    }
    data.remove_prefix(n);
    offset += n;
  }
  return absl::OkStatus();
}

absl::Status PreadExact(int fd, char* out, uint64_t size, uint64_t offset,
                        absl::string_view path_for_errors) {
  while (size > 0) {
    ssize_t n = pread(fd, out, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "cannot read", path_for_errors);
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat(
          path_for_errors, " ended early: ", size, " bytes missing at offset ", offset));
    }
    out += n;
    size -= n;
    offset += n;
  }
  return absl::OkStatus();
}

}  // namespace shoal
