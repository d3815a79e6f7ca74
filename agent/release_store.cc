#include "agent/release_store.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

// A stored manifest larger than this is refused as damaged.
constexpr uint64_t kMaxStoredManifestBytes = uint64_t{64} << 20;

std::string ManifestPath(const std::string& dir) { return dir + "/manifest"; }
std::string DataDir(const std::string& dir) { return dir + "/data"; }
std::string ProofsPath(const std::string& dir) { return dir + "/proofs"; }
std::string JournalPath(const std::string& dir) { return dir + "/verified"; }

// The directory that holds `path`: "." for a bare name.
std::string ParentOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The real filesystem for the overloads that take none. Stateless, so
// sharing one is harmless; never destroyed, so it outlives every store.
FileOps& RealFiles() {
  static RealFileOps* const ops = new RealFileOps;
  return *ops;
}

std::vector<std::string> DataPaths(const std::string& dir,
                                   const Manifest& manifest) {
  std::vector<std::string> paths;
  paths.reserve(manifest.body().files_size());
  for (const v1::FileEntry& f : manifest.body().files()) {
    paths.push_back(absl::StrCat(DataDir(dir), "/", f.path()));
  }
  return paths;
}

// Each file's pieces root; zeros for an empty file, which has none.
std::vector<Digest> Roots(const Manifest& manifest) {
  std::vector<Digest> roots;
  for (const v1::FileEntry& f : manifest.body().files()) {
    // A validated manifest carries a 32-byte root for every non-empty file.
    roots.push_back(f.size() == 0 ? Digest{}
                                  : DigestFromBytes(f.pieces_root()).value());
  }
  return roots;
}

uint64_t ProofSlotBytes(const ReleasePieces& pieces) {
  uint64_t longest = 0;
  for (uint32_t f = 0; f < pieces.num_files(); ++f) {
    longest = std::max<uint64_t>(longest,
                                 pieces.geometry(FileIndex(f)).proof_length());
  }
  return longest * kDigestSize;
}

// The release id of the manifest stored in `dir`; NOT_FOUND if none.
absl::StatusOr<std::string> StoredReleaseId(FileOps& files,
                                            const std::string& dir) {
  ASSIGN_OR_RETURN(std::string bytes,
                   ReleaseStore::ReadStoredManifest(files, dir));
  v1::SignedManifest stored;
  if (!stored.ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat(ManifestPath(dir), " is not a SignedManifest"));
  }
  return ReleaseIdOf(stored);
}

absl::Status RefuseExisting(FileOps& files, const std::string& dir,
                            const Manifest& manifest) {
  absl::StatusOr<std::string> id = StoredReleaseId(files, dir);
  if (absl::IsNotFound(id.status())) return absl::OkStatus();
  if (!id.ok()) return id.status();
  if (*id == manifest.release_id()) {
    return absl::AlreadyExistsError(
        absl::StrCat(dir, " already holds ", manifest.display_name(),
                     " (release ", *id, "); open it instead"));
  }
  return absl::AlreadyExistsError(
      absl::StrCat(dir, " holds another release, ", *id));
}

// Creates (or empties) `path` at `size` bytes, sparse.
absl::Status CreateSparseFile(FileOps& files, const std::string& path,
                              uint64_t size, bool durable) {
  ASSIGN_OR_RETURN(const int fd,
                   files.Open(path, O_RDWR | O_CREAT | O_TRUNC, 0644));
  OpenFile file(files, fd, path);
  RETURN_IF_ERROR(files.Truncate(fd, size, path));
  if (durable) RETURN_IF_ERROR(files.DataSync(fd, path));
  return absl::OkStatus();
}

absl::Status CreateDataFiles(FileOps& files, const std::string& dir,
                             const Manifest& manifest,
                             const std::vector<std::string>& paths,
                             bool durable) {
  // The directories that may get new entries, the store's own included.
  std::set<std::string> dirs = {ParentOf(dir), dir, DataDir(dir)};
  RETURN_IF_ERROR(files.MakeDirs(DataDir(dir)));
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string parent = ParentOf(paths[i]);
    if (dirs.insert(parent).second) RETURN_IF_ERROR(files.MakeDirs(parent));
    RETURN_IF_ERROR(CreateSparseFile(files, paths[i],
                                     manifest.body().files(i).size(), durable));
  }
  if (!durable) return absl::OkStatus();
  // So that the new files survive a crash.
  for (const std::string& d : dirs) RETURN_IF_ERROR(files.SyncDir(d));
  return absl::OkStatus();
}

// DATA_LOSS unless every data file is there at its signed size.
absl::Status CheckDataFiles(FileOps& files, const Manifest& manifest,
                            const std::vector<std::string>& paths) {
  for (size_t i = 0; i < paths.size(); ++i) {
    absl::StatusOr<FileInfo> info = files.Stat(paths[i]);
    if (absl::IsNotFound(info.status())) {
      return absl::DataLossError(absl::StrCat(paths[i], " is missing"));
    }
    if (!info.ok()) return info.status();
    const uint64_t want = manifest.body().files(i).size();
    if (info->size != want) {
      return absl::DataLossError(absl::StrCat(
          paths[i], " is ", info->size, " bytes; the release says ", want));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<OpenFile>> OpenProofs(FileOps& files,
                                                     const std::string& dir,
                                                     uint64_t size) {
  const std::string path = ProofsPath(dir);
  absl::StatusOr<int> fd = files.Open(path, O_RDWR, 0);
  if (absl::IsNotFound(fd.status())) {
    return absl::DataLossError(absl::StrCat(path, " is missing"));
  }
  if (!fd.ok()) return fd.status();
  auto file = std::make_unique<OpenFile>(files, *fd, path);
  ASSIGN_OR_RETURN(const FileInfo info, files.StatFd(*fd, path));
  if (info.size != size) {
    return absl::DataLossError(
        absl::StrCat(path, " is ", info.size, " bytes, not ", size));
  }
  return file;
}

}  // namespace

// Everything a store is built from; Create and Open fill it in.
struct ReleaseStore::Parts {
  FileOps* files;
  std::string dir;
  Manifest manifest;
  ReleasePieces pieces;
  ReleaseStoreOptions options;
  std::unique_ptr<OpenFile> proofs;
  std::unique_ptr<VerifiedJournal> journal;
  Bitfield recorded;
};

ReleaseStore::ReleaseStore(Parts parts)
    : files_(*parts.files),
      dir_(std::move(parts.dir)),
      manifest_(std::move(parts.manifest)),
      pieces_(std::move(parts.pieces)),
      options_(parts.options),
      data_paths_(DataPaths(dir_, manifest_)),
      roots_(Roots(manifest_)),
      proof_slot_(ProofSlotBytes(pieces_)),
      proofs_(std::move(parts.proofs)),
      data_files_(files_, std::max<uint32_t>(options_.max_open_files, 1),
                  O_RDWR),
      direct_files_(files_, std::max<uint32_t>(options_.max_open_files, 1),
                    O_RDWR | O_DIRECT),
      direct_io_(options_.direct_io),
      journal_(std::move(parts.journal)),
      held_(std::move(parts.recorded)),
      held_count_(held_.Count()),
      held_bytes_(0) {
  for (uint32_t i = 0; i < pieces_.total_pieces(); ++i) {
    const ReleasePieceIndex piece(i);
    if (!held_.Get(piece)) continue;
    const FilePiece where = pieces_.Locate(piece);
    held_bytes_ += pieces_.geometry(where.file).piece_length(where.piece);
  }
}

ReleaseStore::~ReleaseStore() {
  absl::Status status = Commit();
  if (!status.ok()) {
    LOG(WARNING) << dir_ << ": pending pieces not recorded: " << status;
  }
}

absl::StatusOr<std::unique_ptr<ReleaseStore>> ReleaseStore::Create(
    FileOps& files, const std::string& dir, const Manifest& manifest,
    ReleaseStoreOptions options) {
  ASSIGN_OR_RETURN(ReleasePieces pieces, ReleasePieces::Create(manifest));
  RETURN_IF_ERROR(RefuseExisting(files, dir, manifest));
  const bool durable = options.durable;
  RETURN_IF_ERROR(
      CreateDataFiles(files, dir, manifest, DataPaths(dir, manifest), durable));
  const uint64_t proofs_size =
      uint64_t{pieces.total_pieces()} * ProofSlotBytes(pieces);
  RETURN_IF_ERROR(
      CreateSparseFile(files, ProofsPath(dir), proofs_size, durable));
  ASSIGN_OR_RETURN(const Digest release, DigestFromHex(manifest.release_id()));
  ASSIGN_OR_RETURN(std::unique_ptr<VerifiedJournal> journal,
                   VerifiedJournal::Create(files, JournalPath(dir), release,
                                           pieces.total_pieces(), durable));
  ASSIGN_OR_RETURN(std::unique_ptr<OpenFile> proofs,
                   OpenProofs(files, dir, proofs_size));
  // The manifest goes last: its presence says the rest is complete. Its
  // rename syncs the directory, which also makes proofs and verified stay.
  RETURN_IF_ERROR(files.WriteFileAtomically(
      ManifestPath(dir), manifest.signed_manifest().SerializeAsString(), 0644,
      durable));
  const uint32_t total = pieces.total_pieces();
  return absl::WrapUnique(new ReleaseStore(
      Parts{&files, dir, manifest, std::move(pieces), options,
            std::move(proofs), std::move(journal), Bitfield(total)}));
}

absl::StatusOr<std::unique_ptr<ReleaseStore>> ReleaseStore::Open(
    FileOps& files, const std::string& dir, const Manifest& manifest,
    ReleaseStoreOptions options) {
  ASSIGN_OR_RETURN(ReleasePieces pieces, ReleasePieces::Create(manifest));
  ASSIGN_OR_RETURN(const std::string stored_id, StoredReleaseId(files, dir));
  if (stored_id != manifest.release_id()) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " holds release ", stored_id, ", not ", manifest.display_name(),
        " (", manifest.release_id(), ")"));
  }
  RETURN_IF_ERROR(CheckDataFiles(files, manifest, DataPaths(dir, manifest)));
  ASSIGN_OR_RETURN(
      std::unique_ptr<OpenFile> proofs,
      OpenProofs(files, dir,
                 uint64_t{pieces.total_pieces()} * ProofSlotBytes(pieces)));
  ASSIGN_OR_RETURN(const Digest release, DigestFromHex(manifest.release_id()));
  absl::StatusOr<VerifiedJournal::Opened> opened = VerifiedJournal::Open(
      files, JournalPath(dir), release, pieces.total_pieces(), options.durable);
  if (absl::IsNotFound(opened.status())) {
    return absl::DataLossError(opened.status().message());
  }
  if (!opened.ok()) return opened.status();
  return absl::WrapUnique(new ReleaseStore(Parts{
      &files, dir, manifest, std::move(pieces), options, std::move(proofs),
      std::move(opened->journal), std::move(opened->recorded)}));
}

absl::StatusOr<std::unique_ptr<ReleaseStore>> ReleaseStore::Create(
    const std::string& dir, const Manifest& manifest,
    ReleaseStoreOptions options) {
  return Create(RealFiles(), dir, manifest, options);
}

absl::StatusOr<std::unique_ptr<ReleaseStore>> ReleaseStore::Open(
    const std::string& dir, const Manifest& manifest,
    ReleaseStoreOptions options) {
  return Open(RealFiles(), dir, manifest, options);
}

absl::StatusOr<std::string> ReleaseStore::ReadStoredManifest(
    FileOps& files, const std::string& dir) {
  return files.ReadFile(ManifestPath(dir), kMaxStoredManifestBytes);
}

absl::StatusOr<std::string> ReleaseStore::ReadStoredManifest(
    const std::string& dir) {
  return ReadStoredManifest(RealFiles(), dir);
}

Bitfield ReleaseStore::bitfield() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

bool ReleaseStore::Has(ReleasePieceIndex piece) const {
  if (piece.value() >= pieces_.total_pieces()) return false;
  absl::MutexLock lock(&mu_);
  return held_.Get(piece);
}

uint32_t ReleaseStore::verified_count() const {
  absl::MutexLock lock(&mu_);
  return held_count_;
}

bool ReleaseStore::complete() const {
  return verified_count() == pieces_.total_pieces();
}

uint64_t ReleaseStore::verified_bytes() const {
  absl::MutexLock lock(&mu_);
  return held_bytes_;
}

absl::Status ReleaseStore::Put(ReleasePieceIndex piece, absl::string_view data,
                               const MerkleProof& proof) {
  if (piece.value() >= pieces_.total_pieces()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "piece ", piece.value(), " is out of range: the release has ",
        pieces_.total_pieces()));
  }
  const FilePiece where = pieces_.Locate(piece);
  {
    // Cheap refusals before hashing.
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckPutAllowed(piece));
  }
  RETURN_IF_ERROR(Verify(piece, where, data, proof));
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckPutAllowed(piece));
    in_flight_.insert(piece.value());
  }
  const absl::Status written = WritePiece(piece, where, data, proof);
  if (!written.ok()) {
    absl::MutexLock lock(&mu_);
    in_flight_.erase(piece.value());
    if (error_.ok()) error_ = written;
    return written;
  }
  if (MarkVerified(piece, where.file, data.size())) return Commit();
  return absl::OkStatus();
}

absl::Status ReleaseStore::CheckPutAllowed(ReleasePieceIndex piece) const {
  if (!error_.ok()) return error_;
  if (held_.Get(piece) || in_flight_.contains(piece.value())) {
    return absl::AlreadyExistsError(
        absl::StrCat("piece ", piece.value(), " is already stored"));
  }
  return absl::OkStatus();
}

absl::Status ReleaseStore::Verify(ReleasePieceIndex piece,
                                  const FilePiece& where,
                                  absl::string_view data,
                                  const MerkleProof& proof) const {
  const absl::Status status =
      VerifyPiece(pieces_.geometry(where.file), roots_[where.file.value()],
                  where.piece, data, proof);
  if (status.ok()) return status;
  return absl::Status(
      status.code(),
      absl::StrCat("release piece ", piece.value(), " (",
                   manifest_.body().files(where.file.value()).path(),
                   "): ", status.message()));
}

absl::Status ReleaseStore::WritePiece(ReleasePieceIndex piece,
                                      const FilePiece& where,
                                      absl::string_view data,
                                      const MerkleProof& proof) {
  const FileGeometry& g = pieces_.geometry(where.file);
  const uint64_t offset = g.piece_offset(where.piece);
  bool written = false;
  if (IsDirectIoAligned(data.data(), data.size())) {
    ASSIGN_OR_RETURN(written, DirectIo(where.file, [&](const OpenFile& file) {
                       return files_.Pwrite(file.fd(), data, offset,
                                            file.path());
                     }));
  }
  if (!written) {
    ASSIGN_OR_RETURN(std::shared_ptr<const OpenFile> file,
                     DataFile(where.file));
    RETURN_IF_ERROR(files_.Pwrite(file->fd(), data, offset, file->path()));
  }
  if (proof.empty()) return absl::OkStatus();
  std::string slot;
  slot.reserve(proof.size() * kDigestSize);
  for (const Digest& d : proof) {
    slot.append(reinterpret_cast<const char*>(d.data()), d.size());
  }
  return files_.Pwrite(proofs_->fd(), slot, piece.value() * proof_slot_,
                       proofs_->path());
}

bool ReleaseStore::MarkVerified(ReleasePieceIndex piece, FileIndex file,
                                uint64_t length) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(piece.value());
  held_.Set(piece);
  ++held_count_;
  held_bytes_ += length;
  pending_.push_back(piece);
  dirty_files_.insert(file.value());
  return pending_.size() >= options_.commit_every;
}

absl::StatusOr<ServedPiece> ReleaseStore::Read(ReleasePieceIndex piece) const {
  if (!Has(piece)) {
    return absl::NotFoundError(
        absl::StrCat("piece ", piece.value(), " is not held"));
  }
  const FilePiece where = pieces_.Locate(piece);
  const FileGeometry& g = pieces_.geometry(where.file);
  const uint64_t offset = g.piece_offset(where.piece);
  // Through the page cache, unlike writes: a seed serves the same pieces
  // to many peers, and the kernel's read-ahead and cache serve those
  // repeats (reading with O_DIRECT took a seed from 0.85 to 0.5 GB/s of upload here).
  ServedPiece out;
  out.data = PieceBuffer(g.piece_length(where.piece));
  ASSIGN_OR_RETURN(std::shared_ptr<const OpenFile> file, DataFile(where.file));
  RETURN_IF_ERROR(files_.Pread(file->fd(), out.data.data(), out.data.size(),
                               offset, file->path()));
  const uint32_t proof_length = g.proof_length();
  if (proof_length == 0) return out;
  std::string slot(proof_length * kDigestSize, '\0');
  RETURN_IF_ERROR(files_.Pread(proofs_->fd(), slot.data(), slot.size(),
                               piece.value() * proof_slot_, proofs_->path()));
  out.proof.resize(proof_length);
  for (uint32_t i = 0; i < proof_length; ++i) {
    memcpy(out.proof[i].data(), slot.data() + i * kDigestSize, kDigestSize);
  }
  return out;
}

absl::Status ReleaseStore::Commit() {
  absl::MutexLock commit_lock(&commit_mu_);
  std::vector<ReleasePieceIndex> batch;
  std::vector<uint32_t> files;
  {
    absl::MutexLock lock(&mu_);
    if (pending_.empty()) return absl::OkStatus();
    batch.swap(pending_);
    files.assign(dirty_files_.begin(), dirty_files_.end());
    dirty_files_.clear();
  }
  absl::Status status = absl::OkStatus();
  if (options_.durable) status = SyncBatch(files, proof_slot_ > 0);
  if (status.ok()) status = journal_->Append(batch);
  if (!status.ok()) Forget(batch, status);
  return status;
}

absl::Status ReleaseStore::SyncBatch(const std::vector<uint32_t>& files,
                                     bool proofs) {
  // fdatasync through any descriptor of a file flushes all of its dirty
  // pages, so a file the cache closed and reopens since is synced too.
  for (const uint32_t f : files) {
    ASSIGN_OR_RETURN(std::shared_ptr<const OpenFile> file,
                     DataFile(FileIndex(f)));
    RETURN_IF_ERROR(files_.DataSync(file->fd(), file->path()));
  }
  if (proofs) RETURN_IF_ERROR(files_.DataSync(proofs_->fd(), proofs_->path()));
  return absl::OkStatus();
}

void ReleaseStore::Forget(const std::vector<ReleasePieceIndex>& batch,
                          const absl::Status& status) {
  LOG(WARNING) << dir_ << ": forgetting " << batch.size()
               << " verified pieces that could not be recorded: " << status;
  absl::MutexLock lock(&mu_);
  for (const ReleasePieceIndex piece : batch) {
    const FilePiece where = pieces_.Locate(piece);
    held_.Set(piece, false);
    --held_count_;
    held_bytes_ -= pieces_.geometry(where.file).piece_length(where.piece);
  }
  if (error_.ok()) error_ = status;
}

absl::Status ReleaseStore::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

void ReleaseStore::ClearError() {
  absl::MutexLock lock(&mu_);
  error_ = absl::OkStatus();
}

bool ReleaseStore::HasRoomForAPiece() const {
  absl::StatusOr<uint64_t> free = files_.FreeBytes(dir_);
  return !free.ok() || *free >= manifest_.body().piece_size();
}

uint64_t ReleaseStore::disk_bytes() const {
  std::vector<std::string> paths = data_paths_;
  paths.push_back(ManifestPath(dir_));
  paths.push_back(ProofsPath(dir_));
  paths.push_back(JournalPath(dir_));
  uint64_t total = 0;
  for (const std::string& path : paths) {
    absl::StatusOr<FileInfo> info = files_.Stat(path);
    if (info.ok()) total += info->allocated;
  }
  return total;
}

std::string ReleaseStore::data_dir() const { return DataDir(dir_); }

absl::StatusOr<std::shared_ptr<const OpenFile>> ReleaseStore::DataFile(
    FileIndex file) const {
  return data_files_.Get(file.value(), data_paths_[file.value()]);
}

absl::StatusOr<bool> ReleaseStore::DirectIo(
    FileIndex file,
    absl::FunctionRef<absl::Status(const OpenFile&)> io) const {
  if (!direct_io_.load(std::memory_order_relaxed)) return false;
  absl::StatusOr<std::shared_ptr<const OpenFile>> direct =
      direct_files_.Get(file.value(), data_paths_[file.value()]);
  absl::Status status = direct.ok() ? io(**direct) : direct.status();
  if (status.ok()) return true;
  // A full disk or a missing file is the same through the page cache; any
  // other refusal (EINVAL from a filesystem or device that does not take
  // O_DIRECT, or this alignment) means: through the page cache from now on.
  // A real I/O error shows again there.
  if (absl::IsResourceExhausted(status) || absl::IsNotFound(status) ||
      absl::IsDataLoss(status)) {
    return status;
  }
  if (direct_io_.exchange(false)) {
    LOG(WARNING) << dir_ << ": direct I/O refused (" << status
                 << "); using the page cache";
  }
  return false;
}

}  // namespace shoal::agent
