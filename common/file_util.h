#pragma once

// Small POSIX file helpers with errors that name the path.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

// A Status for a failed system call: NOT_FOUND for ENOENT, PERMISSION_DENIED
// for EACCES/EPERM, RESOURCE_EXHAUSTED for ENOSPC/EDQUOT, ALREADY_EXISTS for
// EEXIST, INVALID_ARGUMENT for a path that cannot name a file (ENOTDIR,
// ENAMETOOLONG, ELOOP), otherwise INTERNAL; the message is
// "<what> <path>: <strerror>".
absl::Status ErrnoToStatus(int err, absl::string_view what,
                           absl::string_view path);

// Reads a whole file. FAILED_PRECONDITION if it is larger than `max_size`.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     uint64_t max_size);

// Creates `path` and its missing parents (mode 0755).
absl::Status MakeDirs(const std::string& path);

// Writes `contents` to a temporary file beside `path`, fsyncs it and renames
// it over `path`, so readers see the old file or the whole new one, never a
// part. The directory is fsynced too when `durable` is set.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents, uint32_t mode,
                                 bool durable = true);

// Fsyncs the directory that holds `path`, so that a file just created,
// linked or renamed there survives a crash.
absl::Status SyncParentDirectory(const std::string& path);

// Writes all of `data` at `offset`, retrying short writes and EINTR.
absl::Status PwriteAll(int fd, absl::string_view data, uint64_t offset,
                       absl::string_view path_for_errors);

// Reads exactly `size` bytes at `offset` into `out`. DATA_LOSS if the file
// ends first.
absl::Status PreadExact(int fd, char* out, uint64_t size, uint64_t offset,
                        absl::string_view path_for_errors);

}  // namespace shoal
