#include "publisher/create.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "glog/logging.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "common/merkle.h"
#include "common/origin_layout.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "publisher/inputs.h"

namespace shoal::publisher {
namespace {

struct PlannedFile {
  InputFile input;
  FileGeometry geometry;
  std::vector<Digest> layer;  // filled by the hashing workers
};

struct PieceJob {
  size_t file;
  PieceIndex index;
};

// Hashes every piece of every file on several threads and writes the piece
// objects that the origin does not hold yet. Thread-safe internally; one Run().
class PieceWriter {
 public:
  PieceWriter(std::string origin_dir, std::vector<PlannedFile>& files,
              const CreateOptions& options)
      : origin_dir_(std::move(origin_dir)), files_(files), options_(options) {
    for (size_t f = 0; f < files_.size(); ++f) {
      files_[f].layer.resize(files_[f].geometry.num_pieces());
      for (uint32_t i = 0; i < files_[f].geometry.num_pieces(); ++i) {
        jobs_.push_back(PieceJob{f, PieceIndex(i)});
      }
      total_bytes_ += files_[f].input.size;
    }
  }

  absl::Status Run(int threads) {
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) workers.emplace_back([this] { Work(); });
    for (std::thread& w : workers) w.join();
    absl::MutexLock lock(&mu_);
    return error_;
  }

  uint64_t written() const { return written_; }
  uint64_t reused() const { return reused_; }

 private:
  void Work() {
    char* raw = nullptr;
    CHECK_EQ(posix_memalign(reinterpret_cast<void**>(&raw), 4096,
                            std::max<uint64_t>(options_.piece_size, 4096)),
             0);
    std::unique_ptr<char, decltype(&free)> buffer(raw, free);
    int fd = -1;
    size_t open_file = SIZE_MAX;
    absl::Cleanup closer = [&fd] { if (fd >= 0) close(fd); };
    while (!failed_.load()) {
      size_t j = next_job_.fetch_add(1);
      if (j >= jobs_.size()) break;
      const PieceJob& job = jobs_[j];
      if (job.file != open_file) {
        if (fd >= 0) close(fd);
        const std::string& src = files_[job.file].input.source;
        fd = open(src.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return Fail(ErrnoToStatus(errno, "cannot open", src));
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        open_file = job.file;
      }
      absl::Status s = HashAndStore(fd, job, buffer.get());
      if (!s.ok()) return Fail(std::move(s));
    }
  }

  absl::Status HashAndStore(int fd, const PieceJob& job, char* buffer) {
    PlannedFile& file = files_[job.file];
    const FileGeometry& g = file.geometry;
    uint64_t length = g.piece_length(job.index);
    RETURN_IF_ERROR(PreadExact(fd, buffer, length, g.piece_offset(job.index),
                               file.input.source));
    absl::string_view data(buffer, length);
    ASSIGN_OR_RETURN(Digest hash, PieceHash(g, job.index, data));
    file.layer[job.index.value()] = hash;  // each slot has one writer
    std::string path = absl::StrCat(origin_dir_, "/", PieceObjectPath(hash));
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == length) {
      ++reused_;
    } else {
      // Not fsynced: the filesystem is synced once before anything that
      // refers to the piece is published.
      RETURN_IF_ERROR(WriteFileAtomically(path, data, 0644, /*durable=*/false));
      ++written_;
    }
    uint64_t done = done_bytes_.fetch_add(length) + length;
    if (options_.progress) {
      absl::MutexLock lock(&progress_mu_);
      options_.progress(done, total_bytes_);
    }
    return absl::OkStatus();
  }

  void Fail(absl::Status s) {
    absl::MutexLock lock(&mu_);
    if (error_.ok()) error_ = std::move(s);
    failed_.store(true);
  }

  const std::string origin_dir_;
  std::vector<PlannedFile>& files_;
  const CreateOptions& options_;
  std::vector<PieceJob> jobs_;
  uint64_t total_bytes_ = 0;
  std::atomic<size_t> next_job_{0};
  std::atomic<uint64_t> done_bytes_{0};
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> reused_{0};
  std::atomic<bool> failed_{false};
  absl::Mutex progress_mu_;
  absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

absl::Status CheckOptions(const CreateOptions& o) {
  RETURN_IF_ERROR(ValidateReleaseLabel("name", o.name));
  RETURN_IF_ERROR(ValidateReleaseLabel("version", o.version));
  if (o.keys.empty()) {
    return absl::InvalidArgumentError("no signing key given (--key)");
  }
  if (o.origin_dir.empty()) {
    return absl::InvalidArgumentError("no origin directory given (--origin)");
  }
  if (o.piece_size < kBlockSize || (o.piece_size & (o.piece_size - 1)) != 0 ||
      o.piece_size > (uint64_t{1} << 30)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "piece size ", o.piece_size,
        " must be a power of two between 16384 (16 KiB) and 1073741824 (1 GiB)"));
  }
  if (o.expires_in <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--expires_in must be positive");
  }
  return absl::OkStatus();
}

absl::Status MakeOriginDirs(const std::string& origin) {
  for (const char* top : {"releases", "names", "pieces", "layers"}) {
    RETURN_IF_ERROR(MakeDirs(absl::StrCat(origin, "/", top)));
  }
  for (int i = 0; i < 256; ++i) {
    std::string hh = absl::StrFormat("%02x", i);
    RETURN_IF_ERROR(MakeDirs(absl::StrCat(origin, "/pieces/", hh)));
    RETURN_IF_ERROR(MakeDirs(absl::StrCat(origin, "/layers/", hh)));
  }
  return absl::OkStatus();
}

// Builds each file's tree from its piece layer, writes the layer objects and
// fills in the manifest's file entries.
absl::Status FinishFiles(const std::string& origin,
                         const std::vector<PlannedFile>& files,
                         v1::ManifestBody& body) {
  for (const PlannedFile& file : files) {
    v1::FileEntry* entry = body.add_files();
    entry->set_path(file.input.path);
    entry->set_size(file.input.size);
    entry->set_mode(file.input.mode);
    if (file.geometry.num_pieces() == 0) continue;
    ASSIGN_OR_RETURN(PieceTree tree, PieceTree::Create(file.geometry, file.layer));
    entry->set_pieces_root(std::string(DigestBytes(tree.root())));
    std::string layer;
    layer.reserve(file.layer.size() * 32);
    for (const Digest& d : file.layer) absl::StrAppend(&layer, DigestBytes(d));
    RETURN_IF_ERROR(WriteFileAtomically(
        absl::StrCat(origin, "/", LayerObjectPath(tree.root())), layer, 0644,
        /*durable=*/false));
  }
  return absl::OkStatus();
}

absl::Status SyncFilesystem(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "cannot open", dir);
  int rc = syncfs(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoToStatus(err, "cannot sync the filesystem of", dir);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CreateResult> CreateRelease(const CreateOptions& options,
                                           const Clock& clock) {
  RETURN_IF_ERROR(CheckOptions(options));
  ASSIGN_OR_RETURN(std::vector<InputFile> inputs, CollectInputs(options.inputs));
  std::vector<PlannedFile> files;
  for (InputFile& input : inputs) {
    ASSIGN_OR_RETURN(FileGeometry g,
                     FileGeometry::Create(input.size, options.piece_size));
    files.push_back(PlannedFile{std::move(input), g, {}});
  }
  const std::string& origin = options.origin_dir;
  RETURN_IF_ERROR(MakeOriginDirs(origin));

  int threads = options.threads > 0
                    ? options.threads
                    : std::max(1u, std::thread::hardware_concurrency());
  PieceWriter writer(origin, files, options);
  RETURN_IF_ERROR(writer.Run(threads));

  absl::Time now = clock.Now();
  v1::ManifestBody body;
  body.set_format(kManifestFormat);
  body.set_name(options.name);
  body.set_version(options.version);
  body.set_sequence(options.sequence.value_or(absl::ToUnixMillis(now)));
  body.set_created_unix_ms(absl::ToUnixMillis(now));
  body.set_expires_unix_ms(absl::ToUnixMillis(now + options.expires_in));
  body.set_piece_size(options.piece_size);
  RETURN_IF_ERROR(FinishFiles(origin, files, body));
  if (options.durable) {
    // Everything the manifest refers to reaches the disk before the manifest.
    RETURN_IF_ERROR(SyncFilesystem(origin));
  }

  ASSIGN_OR_RETURN(v1::SignedManifest signed_manifest,
                   SignManifest(body, options.keys));
  std::string bytes = signed_manifest.SerializeAsString();
  ASSIGN_OR_RETURN(Manifest manifest, Manifest::ParseUnverified(bytes));
  RETURN_IF_ERROR(WriteFileAtomically(
      absl::StrCat(origin, "/", ManifestObjectPath(manifest.release_id())),
      bytes, 0644, options.durable));
  std::string pointer = absl::StrCat(origin, "/", NamePointerPath(options.name, options.version));
  RETURN_IF_ERROR(MakeDirs(absl::StrCat(origin, "/names/", options.name)));
  RETURN_IF_ERROR(WriteFileAtomically(
      pointer, absl::StrCat(manifest.release_id(), "\n"), 0644, options.durable));
  return CreateResult{std::move(manifest), writer.written(), writer.reused()};
}

}  // namespace shoal::publisher
