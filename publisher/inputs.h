#pragma once

// Turns the INPUT arguments of `shoal-publish create` into the list of files a
// release carries.
//
// Choices (documented in docs/publishing.md):
//  - A file argument is carried under its base name; a directory argument is
//    walked recursively and its files are carried under paths relative to that
//    directory (the directory's own name is not part of them).
//  - Only regular files are carried. Symbolic links, empty directories and
//    special files are refused with an error naming them: a release that
//    silently lost an entry would install differently from what was built.
//  - Names must be valid UTF-8 and pass ValidateRelativePath; two inputs that
//    yield the same path are refused.
//  - Permission bits are kept (mode & 0777); set-id and sticky bits are dropped.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal::publisher {

struct InputFile {
  std::string source;  // where to read it, as given or found on disk
  std::string path;    // where it goes in the release
  uint64_t size = 0;
  uint32_t mode = 0;
};

// Sorted by `path`. INVALID_ARGUMENT or NOT_FOUND / PERMISSION_DENIED naming
// the offending entry; an empty input list is INVALID_ARGUMENT.
absl::StatusOr<std::vector<InputFile>> CollectInputs(
    const std::vector<std::string>& inputs);

}  // namespace shoal::publisher
