#include "agent/file_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/file_util.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

FileInfo InfoOf(const struct stat& st) {
  FileInfo info;
  info.size = static_cast<uint64_t>(st.st_size);
  info.allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  return info;
}

}  // namespace

absl::StatusOr<int> RealFileOps::Open(const std::string& path, int flags,
                                      mode_t mode) {
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open", path);
  return fd;
}

void RealFileOps::Close(int fd) { close(fd); }

absl::Status RealFileOps::Pwrite(int fd, absl::string_view data,
                                 uint64_t offset, absl::string_view path) {
  return PwriteAll(fd, data, offset, path);
}

absl::Status RealFileOps::Pread(int fd, char* out, uint64_t size,
                                uint64_t offset, absl::string_view path) {
  return PreadExact(fd, out, size, offset, path);
}

absl::Status RealFileOps::DataSync(int fd, absl::string_view path) {
  if (fdatasync(fd) != 0) return ErrnoToStatus(errno, "cannot sync", path);
  return absl::OkStatus();
}

absl::Status RealFileOps::Truncate(int fd, uint64_t size,
                                   absl::string_view path) {
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return ErrnoToStatus(errno, "cannot set the size of", path);
  }
  return absl::OkStatus();
}

absl::StatusOr<FileInfo> RealFileOps::StatFd(int fd, absl::string_view path) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoToStatus(errno, "cannot stat", path);
  return InfoOf(st);
}

absl::StatusOr<FileInfo> RealFileOps::Stat(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, "cannot stat", path);
  }
  return InfoOf(st);
}

absl::StatusOr<uint64_t> RealFileOps::FreeBytes(const std::string& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, "cannot stat the filesystem of", path);
  }
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

absl::Status RealFileOps::MakeDirs(const std::string& dir) {
  return shoal::MakeDirs(dir);
}

absl::Status RealFileOps::SyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open directory", dir);
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return ErrnoToStatus(err, "cannot sync directory", dir);
  return absl::OkStatus();
}

absl::StatusOr<std::string> RealFileOps::ReadFile(const std::string& path,
                                                  uint64_t max_size) {
  return shoal::ReadFile(path, max_size);
}

absl::Status RealFileOps::WriteFileAtomically(const std::string& path,
                                              absl::string_view contents,
                                              uint32_t mode, bool durable) {
  return shoal::WriteFileAtomically(path, contents, mode, durable);
}

OpenFileCache::OpenFileCache(FileOps& ops, size_t capacity, int flags)
    : ops_(ops), capacity_(capacity), flags_(flags) {
  CHECK_GT(capacity_, 0u);
}

absl::StatusOr<std::shared_ptr<const OpenFile>> OpenFileCache::Get(
    uint32_t key, const std::string& path) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.position);
    return it->second.file;
  }
  absl::StatusOr<int> fd = ops_.Open(path, flags_, 0);
  if (!fd.ok()) return fd.status();
  if (entries_.size() >= capacity_) {
    // Dropping the cache's reference closes the file unless a caller still
    // holds it; then the caller's release closes it.
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  auto file = std::make_shared<const OpenFile>(ops_, *fd, path);
  lru_.push_front(key);
  entries_[key] = Entry{file, lru_.begin()};
  return file;
}

}  // namespace shoal::agent
