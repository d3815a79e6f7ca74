#include "publisher/inputs.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "common/paths.h"
#include "common/status_macros.h"

namespace shoal::publisher {
namespace {

// Deeper trees than this are refused rather than walked (symlinks are refused,
// so this only bounds pathological inputs).
constexpr int kMaxDepth = 256;

class Walker {
 public:
  absl::Status AddFile(const std::string& source, std::string path,
                       const struct stat& st) {
    if (absl::Status s = ValidateRelativePath(path); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot carry ", source, ": ", s.message()));
    }
    if (access(source.c_str(), R_OK) != 0) {
      return ErrnoToStatus(errno, "cannot read", source);
    }
    auto [it, inserted] = seen_.emplace(path, source);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate path \"", path, "\" from both ", it->second,
                       " and ", source));
    }
    files_.push_back(InputFile{source, std::move(path),
                               static_cast<uint64_t>(st.st_size),
                               static_cast<uint32_t>(st.st_mode & 0777)});
    return absl::OkStatus();
  }

  absl::Status AddEntry(const std::string& source, const std::string& path,
                        int depth) {
    struct stat st;
    if (lstat(source.c_str(), &st) != 0) {
      return ErrnoToStatus(errno, "cannot stat", source);
    }
    if (S_ISREG(st.st_mode)) return AddFile(source, path, st);
    if (S_ISDIR(st.st_mode)) return AddDirectory(source, path, depth);
    if (S_ISLNK(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "symbolic link ", source,
          ": releases carry regular files only; copy the target in place"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "special file ", source, ": releases carry regular files only"));
  }

  absl::Status AddDirectory(const std::string& source,
                            const std::string& prefix, int depth) {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("directory tree deeper than ", kMaxDepth, " at ", source));
    }
    std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(source.c_str()), closedir);
    if (dir == nullptr) {
      return ErrnoToStatus(errno, "cannot open directory", source);
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = readdir(dir.get())) {
      absl::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    if (errno != 0) return ErrnoToStatus(errno, "cannot list directory", source);
    if (names.empty() && depth > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "empty directory ", source,
          ": releases carry regular files only; remove it or add a file"));
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string child_path = prefix.empty() ? name : absl::StrCat(prefix, "/", name);
      RETURN_IF_ERROR(AddEntry(absl::StrCat(source, "/", name), child_path, depth + 1));
    }
    return absl::OkStatus();
  }

  std::vector<InputFile> Take() {
    std::sort(files_.begin(), files_.end(),
              [](const InputFile& a, const InputFile& b) { return a.path < b.path; });
    return std::move(files_);
  }

 private:
  std::vector<InputFile> files_;
  absl::flat_hash_map<std::string, std::string> seen_;  // path -> source
};

std::string BaseName(absl::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace

absl::StatusOr<std::vector<InputFile>> CollectInputs(
    const std::vector<std::string>& inputs) {
  if (inputs.empty()) {
    return absl::InvalidArgumentError("no input files or directories given");
  }
  Walker walker;
  for (const std::string& input : inputs) {
    struct stat st;
    if (lstat(input.c_str(), &st) != 0) {
      return ErrnoToStatus(errno, "cannot stat", input);
    }
    if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(walker.AddDirectory(input, "", 0));
    } else {
      RETURN_IF_ERROR(walker.AddEntry(input, BaseName(input), 0));
    }
  }
  std::vector<InputFile> files = walker.Take();
  if (files.empty()) {
    return absl::InvalidArgumentError("the inputs hold no files");
  }
  return files;
}

}  // namespace shoal::publisher
