#pragma once

// Helpers of the install tests: signed releases of chosen files, a store
// data directory holding them, and a check that an installed tree is
// exactly a release.

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/install.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "glog/logging.h"

namespace shoal::agent::install_testing {

inline constexpr int64_t kCreatedMs = 1704067200000;  // 2024-01-01

struct TestFile {
  std::string path;
  std::string content;
  uint32_t mode = 0644;
};

inline void CheckOk(const absl::Status& status) {
  CHECK(status.ok()) << status;
}

inline std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// A really signed release name@version of `files` (sorted by path, as
// manifests are). The pieces roots are stand-ins: install never reads
// them, and the store's verification is not under test here.
class TestRelease {
 public:
  TestRelease(const std::string& name, const std::string& version,
              std::vector<TestFile> files, uint64_t sequence = 1)
      : files_(std::move(files)) {
    std::sort(
        files_.begin(), files_.end(),
        [](const TestFile& a, const TestFile& b) { return a.path < b.path; });
    v1::ManifestBody body;
    body.set_format(kManifestFormat);
    body.set_name(name);
    body.set_version(version);
    body.set_sequence(sequence);
    body.set_created_unix_ms(kCreatedMs);
    body.set_expires_unix_ms(kCreatedMs + 86400000);
    body.set_piece_size(64 * 1024);
    for (const TestFile& file : files_) {
      v1::FileEntry* entry = body.add_files();
      entry->set_path(file.path);
      entry->set_size(file.content.size());
      entry->set_mode(file.mode);
      if (!file.content.empty()) {
        entry->set_pieces_root(RandomBytes(32, file.content.size()));
      }
    }
    const PrivateKey key = PrivateKey::Generate().value();
    const TrustPolicy trust =
        TrustPolicy::Create({key.public_key()}, 1).value();
    const std::string bytes = SignManifest(body, {key})->SerializeAsString();
    manifest_ =
        Manifest::Verify(bytes, trust,
                         absl::FromUnixMillis(kCreatedMs) + absl::Hours(1))
            .value();
  }

  const Manifest& manifest() const { return *manifest_; }
  const std::vector<TestFile>& files() const { return files_; }
  std::string release() const { return manifest_->display_name(); }

  // Writes the files into `store_dir`/data as a complete store holds them
  // (mode 0644, whatever the manifest says) and returns that data dir.
  std::string WriteStore(const std::string& store_dir) const {
    const std::string data = store_dir + "/data";
    for (const TestFile& file : files_) {
      const std::string path = data + "/" + file.path;
      CheckOk(MakeDirs(path.substr(0, path.find_last_of('/'))));
      CheckOk(WriteFileAtomically(path, file.content, 0644, false));
    }
    CheckOk(MakeDirs(data));
    return data;
  }

 private:
  std::vector<TestFile> files_;
  std::optional<Manifest> manifest_;
};

// Regular files under `dir`, relative, recursively; other entries than
// directories and regular files are listed with a "?" in front.
inline void ListTree(const std::string& dir, const std::string& prefix,
                     std::set<std::string>& out) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  while (const struct dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      ListTree(path, prefix + name + "/", out);
    } else {
      out.insert((S_ISREG(st.st_mode) ? "" : "?") + prefix + name);
    }
  }
  closedir(d);
}

// Empty if `dir` holds exactly `release`'s files, byte for byte and with
// their modes, plus the install marker; otherwise what differs.
inline std::string DiffTree(const std::string& dir,
                            const TestRelease& release) {
  std::set<std::string> expected = {kInstallMarker};
  for (const TestFile& file : release.files()) expected.insert(file.path);
  std::set<std::string> present;
  ListTree(dir, "", present);
  if (present != expected) {
    std::string have;
    for (const std::string& p : present) absl::StrAppend(&have, " ", p);
    return absl::StrCat(dir, " holds:", have);
  }
  for (const TestFile& file : release.files()) {
    const std::string path = dir + "/" + file.path;
    const absl::StatusOr<std::string> content = ReadFile(path, 1 << 30);
    if (!content.ok()) return content.status().ToString();
    if (*content != file.content) return path + " differs";
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return path + " cannot be stat'ed";
    if ((st.st_mode & 07777) != file.mode) {
      return absl::StrCat(path, " has mode ", st.st_mode & 07777, " not ",
                          file.mode);
    }
  }
  return "";
}

}  // namespace shoal::agent::install_testing
