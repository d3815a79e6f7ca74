#include "publisher/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "common/merkle.h"
#include "common/origin_layout.h"
#include "common/paths.h"
#include "common/status_macros.h"

namespace shoal::publisher {
namespace {

constexpr uint64_t kMaxManifestBytes = 64 << 20;
constexpr size_t kMaxReportedProblems = 20;

// Collects problems from several threads; keeps the first few verbatim.
class Problems {
 public:
  void Add(std::string problem) {
    absl::MutexLock lock(&mu_);
    ++count_;
    if (list_.size() < kMaxReportedProblems) list_.push_back(std::move(problem));
  }
  absl::Status ToStatus(const Manifest& m) const {
    absl::MutexLock lock(&mu_);
    if (count_ == 0) return absl::OkStatus();
    std::string more = count_ > list_.size()
                           ? absl::StrCat("\n  ... and ", count_ - list_.size(), " more")
                           : "";
    return absl::DataLossError(absl::StrCat(
        m.display_name(), " (", m.release_id(), ") is damaged: ", count_,
        " problem(s):\n  ", absl::StrJoin(list_, "\n  "), more));
  }

 private:
  mutable absl::Mutex mu_;
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> list_ ABSL_GUARDED_BY(mu_);
};

struct FileCheck {
  const v1::FileEntry* entry;
  FileGeometry geometry;
  std::vector<Digest> layer;  // empty when the layer object was unusable
};

// Reads and checks a file's layer object against its signed pieces root.
absl::StatusOr<std::vector<Digest>> LoadLayer(const std::string& origin,
                                              const FileGeometry& g,
                                              const Digest& root) {
  std::string path = absl::StrCat(origin, "/", LayerObjectPath(root));
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, uint64_t{g.num_pieces()} * 32));
  if (bytes.size() != uint64_t{g.num_pieces()} * 32) {
    return absl::DataLossError(absl::StrCat("layer object ", path, " has ",
                                            bytes.size(), " bytes, expected ",
                                            uint64_t{g.num_pieces()} * 32));
  }
  std::vector<Digest> layer(g.num_pieces());
  for (size_t i = 0; i < layer.size(); ++i) {
    ASSIGN_OR_RETURN(layer[i], DigestFromBytes(absl::string_view(bytes).substr(i * 32, 32)));
  }
  ASSIGN_OR_RETURN(Digest computed, PiecesRoot(g, layer));
  if (computed != root) {
    return absl::DataLossError(absl::StrCat(
        "layer object ", path, " does not prove into the signed pieces root"));
  }
  return layer;
}

absl::Status CheckPiece(const std::string& origin, const FileCheck& f,
                        PieceIndex i, std::string& buffer) {
  const Digest& expected = f.layer[i.value()];
  std::string path = absl::StrCat(origin, "/", PieceObjectPath(expected));
  uint64_t length = f.geometry.piece_length(i);
  ASSIGN_OR_RETURN(buffer, ReadFile(path, length));
  if (buffer.size() != length) {
    return absl::DataLossError(absl::StrCat("object has ", buffer.size(),
                                            " bytes, expected ", length));
  }
  ASSIGN_OR_RETURN(Digest actual, PieceHash(f.geometry, i, buffer));
  if (actual != expected) {
    return absl::DataLossError("content does not match its piece hash");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ResolveReleaseId(const std::string& origin_dir,
                                             const std::string& ref) {
  if (IsReleaseId(ref)) return ref;
  std::vector<std::string> parts = absl::StrSplit(ref, absl::MaxSplits('@', 1));
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", ref, "\" is neither NAME@VERSION nor a 64-digit release id"));
  }
  RETURN_IF_ERROR(ValidateReleaseLabel("name", parts[0]));
  RETURN_IF_ERROR(ValidateReleaseLabel("version", parts[1]));
  std::string path = absl::StrCat(origin_dir, "/", NamePointerPath(parts[0], parts[1]));
  absl::StatusOr<std::string> id = ReadFile(path, 1024);
  if (absl::IsNotFound(id.status())) {
    return absl::NotFoundError(absl::StrCat("no release ", ref, " in ", origin_dir,
                                            " (", path, " is missing)"));
  }
  RETURN_IF_ERROR(id.status());
  std::string trimmed(absl::StripAsciiWhitespace(*id));
  if (!IsReleaseId(trimmed)) {
    return absl::DataLossError(absl::StrCat(path, " does not hold a release id"));
  }
  return trimmed;
}

absl::StatusOr<Manifest> LoadManifest(const std::string& origin_dir,
                                      const std::string& release_id,
                                      const TrustPolicy& trust,
                                      absl::Time now) {
  std::string path = absl::StrCat(origin_dir, "/", ManifestObjectPath(release_id));
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, kMaxManifestBytes));
  absl::StatusOr<Manifest> manifest = Manifest::Verify(bytes, trust, now);
  if (!manifest.ok()) {
    return absl::Status(manifest.status().code(),
                        absl::StrCat(path, ": ", manifest.status().message()));
  }
  if (manifest->release_id() != release_id) {
    return absl::DataLossError(absl::StrCat(
        path, ": the signed body hashes to ", manifest->release_id(),
        ", not to the release id it is stored under"));
  }
  return manifest;
}

absl::StatusOr<VerifyReport> VerifyRelease(const std::string& origin_dir,
                                           const std::string& ref,
                                           const TrustPolicy& trust,
                                           const Clock& clock, int threads) {
  ASSIGN_OR_RETURN(std::string id, ResolveReleaseId(origin_dir, ref));
  ASSIGN_OR_RETURN(Manifest manifest, LoadManifest(origin_dir, id, trust, clock.Now()));
  Problems problems;
  std::vector<FileCheck> files;
  std::vector<std::pair<size_t, PieceIndex>> jobs;
  for (const v1::FileEntry& entry : manifest.body().files()) {
    ASSIGN_OR_RETURN(FileGeometry g,
                     FileGeometry::Create(entry.size(), manifest.body().piece_size()));
    FileCheck check{&entry, g, {}};
    if (g.num_pieces() > 0) {
      ASSIGN_OR_RETURN(Digest root, DigestFromBytes(entry.pieces_root()));
      absl::StatusOr<std::vector<Digest>> layer = LoadLayer(origin_dir, g, root);
      if (!layer.ok()) {
        problems.Add(absl::StrCat(entry.path(), ": ", layer.status().message()));
      } else {
        check.layer = *std::move(layer);
        for (uint32_t i = 0; i < g.num_pieces(); ++i) jobs.emplace_back(files.size(), PieceIndex(i));
      }
    }
    files.push_back(std::move(check));
  }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0};
  auto work = [&] {
    std::string buffer;
    for (size_t j = next.fetch_add(1); j < jobs.size(); j = next.fetch_add(1)) {
      const FileCheck& f = files[jobs[j].first];
      PieceIndex i = jobs[j].second;
      absl::Status s = CheckPiece(origin_dir, f, i, buffer);
      if (!s.ok()) {
        problems.Add(absl::StrCat(f.entry->path(), " piece ", i.value(), ": ", s.message()));
      }
      bytes += f.geometry.piece_length(i);
    }
  };
  std::vector<std::thread> workers;
  for (int t = 0; t < std::max(1, threads); ++t) workers.emplace_back(work);
  for (std::thread& w : workers) w.join();
  RETURN_IF_ERROR(problems.ToStatus(manifest));
  return VerifyReport{std::move(manifest), jobs.size(), bytes.load()};
}

}  // namespace shoal::publisher
