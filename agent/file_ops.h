#pragma once

// The filesystem as a seam for the agent's storage: the few POSIX calls the
// release store makes, behind an interface that tests replace to inject
// ENOSPC or EIO, and a bounded cache of open files.
//
// Errors follow ErrnoToStatus (common/file_util.h): RESOURCE_EXHAUSTED for
// ENOSPC/EDQUOT, NOT_FOUND for ENOENT, INTERNAL for EIO and anything
// unexpected; messages name the path.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace shoal::agent {

// What stat() says about a file.
struct FileInfo {
  uint64_t size = 0;
  // Bytes the filesystem allocated for it (st_blocks * 512): less than
  // `size` for a sparse file.
  uint64_t allocated = 0;
};

// File system calls on descriptors and paths. `path` arguments of the
// descriptor calls only name the file in error messages. Implementations are
// thread-safe.
class FileOps {
 public:
  virtual ~FileOps() = default;

  // open(2) with O_CLOEXEC added; returns the descriptor.
  virtual absl::StatusOr<int> Open(const std::string& path, int flags,
                                   mode_t mode) = 0;
  // close(2); errors are ignored (data that matters was synced before).
  virtual void Close(int fd) = 0;
  // All of `data` at `offset`.
  virtual absl::Status Pwrite(int fd, absl::string_view data, uint64_t offset,
                              absl::string_view path) = 0;
  // Exactly `size` bytes at `offset`; DATA_LOSS if the file ends first.
  virtual absl::Status Pread(int fd, char* out, uint64_t size, uint64_t offset,
                             absl::string_view path) = 0;
  // fdatasync(2).
  virtual absl::Status DataSync(int fd, absl::string_view path) = 0;
  // ftruncate(2).
  virtual absl::Status Truncate(int fd, uint64_t size,
                                absl::string_view path) = 0;
  // fstat(2) / stat(2).
  virtual absl::StatusOr<FileInfo> StatFd(int fd, absl::string_view path) = 0;
  virtual absl::StatusOr<FileInfo> Stat(const std::string& path) = 0;
  // Bytes that may still be allocated on the filesystem holding `path`
  // (statvfs(2): f_bavail x f_frsize).
  virtual absl::StatusOr<uint64_t> FreeBytes(const std::string& path) = 0;
  // Creates `dir` and its missing parents.
  virtual absl::Status MakeDirs(const std::string& dir) = 0;
  // Fsyncs the directory `dir` itself (not a file's parent).
  virtual absl::Status SyncDir(const std::string& dir) = 0;
  // As common/file_util.h's ReadFile and WriteFileAtomically.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path,
                                               uint64_t max_size) = 0;
  virtual absl::Status WriteFileAtomically(const std::string& path,
                                           absl::string_view contents,
                                           uint32_t mode, bool durable) = 0;
};

// The real filesystem. Stateless and thread-safe; tests derive from it to
// fail chosen calls.
class RealFileOps : public FileOps {
 public:
  absl::StatusOr<int> Open(const std::string& path, int flags,
                           mode_t mode) override;
  void Close(int fd) override;
  absl::Status Pwrite(int fd, absl::string_view data, uint64_t offset,
                      absl::string_view path) override;
  absl::Status Pread(int fd, char* out, uint64_t size, uint64_t offset,
                     absl::string_view path) override;
  absl::Status DataSync(int fd, absl::string_view path) override;
  absl::Status Truncate(int fd, uint64_t size, absl::string_view path) override;
  absl::StatusOr<FileInfo> StatFd(int fd, absl::string_view path) override;
  absl::StatusOr<FileInfo> Stat(const std::string& path) override;
  absl::StatusOr<uint64_t> FreeBytes(const std::string& path) override;
  absl::Status MakeDirs(const std::string& dir) override;
  absl::Status SyncDir(const std::string& dir) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path,
                                       uint64_t max_size) override;
  absl::Status WriteFileAtomically(const std::string& path,
                                   absl::string_view contents, uint32_t mode,
                                   bool durable) override;
};

// An open descriptor, closed through its FileOps when destroyed. Not
// copyable. Thread-safe (positional I/O on a shared descriptor is).
class OpenFile {
 public:
  OpenFile(FileOps& ops, int fd, std::string path)
      : ops_(ops), fd_(fd), path_(std::move(path)) {}
  ~OpenFile() { ops_.Close(fd_); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  FileOps& ops_;
  const int fd_;
  const std::string path_;
};

// Keeps at most `capacity` files open, closing the least recently used one
// to make room. A file handed out stays open while its caller holds it,
// even if the cache drops it meanwhile (hence shared_ptr: the cache and any
// number of callers share the descriptor, and the last one closes it).
// Thread-safe. `ops` must outlive the cache and every file it returned.
class OpenFileCache {
 public:
  OpenFileCache(FileOps& ops, size_t capacity, int flags);

  // The open file for `key`, opening `path` (with the cache's flags) on a
  // miss. Errors from FileOps::Open.
  absl::StatusOr<std::shared_ptr<const OpenFile>> Get(uint32_t key,
                                                      const std::string& path);

 private:
  using Lru = std::list<uint32_t>;  // most recently used first
  struct Entry {
    std::shared_ptr<const OpenFile> file;
    Lru::iterator position;
  };

  FileOps& ops_;
  const size_t capacity_;
  const int flags_;
  absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::agent
