#pragma once

// Crash-safe storage of one release on an agent: the release's files,
// written in place piece by piece as pieces are verified, and the record of
// which pieces are verified, so that a restarted agent resumes without
// downloading or hashing again what it recorded and never takes an
// unverified piece for a verified one.
//
// Layout under the store's directory:
//   manifest          SignedManifest bytes, written last by Create (the
//                     directory holds a release once this file exists) and
//                     never changed
//   data/<path...>    the release's files at full size from the start
//                     (sparse), mode 0644; install applies the manifest modes
//   proofs            each verified piece's Merkle proof, in a fixed-size
//                     slot per release piece (32 bytes times the longest proof
//                     length of the release's files); sparse
//   verified          the journal of verified pieces (agent/verified_journal.h)
//
// Ordering that makes a crash safe: a piece's bytes and proof are written
// before its journal record; with `durable` they are also fdatasync'ed
// before the record is appended, and the record itself before Commit()
// returns. A journal record therefore always names a piece whose
// bytes reached the file (the disk, when durable), and a piece without a
// record is simply missing after a restart.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "agent/file_ops.h"
#include "agent/piece_buffer.h"
#include "agent/piece_source.h"
#include "agent/verified_journal.h"
#include "common/bitfield.h"
#include "common/manifest.h"
#include "common/merkle.h"
#include "common/release_pieces.h"

namespace shoal::agent {

struct ReleaseStoreOptions {
  // fdatasync data before recording pieces as verified, so that a power
  // loss never leaves a recorded piece whose bytes did not reach the disk.
  // Without it a recorded piece is still safe against the process dying
  // (kill -9), not against the machine losing power.
  bool durable = true;
  // Group commit: verified pieces are recorded by Commit(), which the owner
  // calls about every second, or by Put() once this many are pending.
  uint32_t commit_every = 64;
  // Data files kept open at once (least recently used closed first).
  uint32_t max_open_files = 64;
  // Whole pieces in page-aligned buffers (agent/piece_buffer.h) are written
  // with O_DIRECT: no copy into the page cache, which cost more CPU than the
  // SHA-256 of the piece on the virtual machines measured here (they hand
  // freed pages back to the host, so fresh page cache is dear). Reads go
  // through the page cache (see Read). Short last pieces and unaligned
  // buffers are written through the page cache; so is everything on a
  // filesystem that refuses O_DIRECT (tmpfs), which the store notices at the
  // first refusal. Turn off where the disk is much slower than the network
  // (network block storage): the page cache then absorbs what the disk
  // cannot take at once.
  bool direct_io = true;
};

// The files and the record of verified pieces of one release, under one
// directory (see the layout above). A piece is visible to Read()/Has() only
// after Put() verified and wrote it. Thread-safe: Put, Read and Commit may
// run concurrently from any threads; Puts of different pieces hash and
// write in parallel.
class ReleaseStore {
 public:
  // A new release in `dir` (created if missing): creates the data files,
  // the proof slots and the journal, then writes the manifest. Errors:
  // ALREADY_EXISTS if `dir` already holds a release (this one or another;
  // the message says which: Open() an existing one), OUT_OF_RANGE for a
  // release of 2^32 or more pieces, filesystem errors otherwise
  // (RESOURCE_EXHAUSTED when the disk is full). A Create that failed or was
  // interrupted leaves no manifest, so it may simply be repeated.
  // `files` must outlive the store.
  static absl::StatusOr<std::unique_ptr<ReleaseStore>> Create(
      FileOps& files, const std::string& dir, const Manifest& manifest,
      ReleaseStoreOptions options);
  // As above, on the real filesystem.
  static absl::StatusOr<std::unique_ptr<ReleaseStore>> Create(
      const std::string& dir, const Manifest& manifest,
      ReleaseStoreOptions options);

  // The release in `dir` after a restart. `manifest` is the caller's
  // verified parse of <dir>/manifest (read it with ReadStoredManifest()).
  // Replays the journal and never re-hashes recorded pieces; pieces written
  // but not recorded are missing. Errors: NOT_FOUND if `dir` holds no
  // manifest; FAILED_PRECONDITION if it holds another release than
  // `manifest` or its journal belongs to another release; DATA_LOSS if a
  // data file, the proof slots or the journal header is missing, the wrong
  // size or corrupt (remove the directory and Create again); filesystem
  // errors otherwise.
  static absl::StatusOr<std::unique_ptr<ReleaseStore>> Open(
      FileOps& files, const std::string& dir, const Manifest& manifest,
      ReleaseStoreOptions options);
  static absl::StatusOr<std::unique_ptr<ReleaseStore>> Open(
      const std::string& dir, const Manifest& manifest,
      ReleaseStoreOptions options);

  // The SignedManifest bytes a store in `dir` was created with, for the
  // caller to verify before Open(). NOT_FOUND if there are none.
  static absl::StatusOr<std::string> ReadStoredManifest(FileOps& files,
                                                        const std::string& dir);
  static absl::StatusOr<std::string> ReadStoredManifest(const std::string& dir);

  // Records pending pieces (as Commit(); errors are logged).
  ~ReleaseStore();
  ReleaseStore(const ReleaseStore&) = delete;
  ReleaseStore& operator=(const ReleaseStore&) = delete;

  const Manifest& manifest() const { return manifest_; }
  const ReleasePieces& pieces() const { return pieces_; }

  // The verified pieces, recorded or pending.
  Bitfield bitfield() const;
  // False also for an index out of range.
  bool Has(ReleasePieceIndex piece) const;
  uint32_t verified_count() const;
  bool complete() const;
  // Sum of the verified pieces' lengths.
  uint64_t verified_bytes() const;

  // Verifies `data` and `proof` against the signed pieces root of the
  // piece's file, writes the bytes in place and the proof in its slot, and
  // makes the piece visible; it is recorded by the next Commit(). Errors:
  //   INVALID_ARGUMENT  index out of range, or wrong data or proof length;
  //   DATA_LOSS         data or proof do not prove into the signed root
  //                     (blame the sender); nothing was written;
  //   ALREADY_EXISTS    the piece is held or another Put of it is under way
  //                     (callers that race for a piece may ignore it; if
  //                     that other Put fails, the piece is missing again);
  //   RESOURCE_EXHAUSTED (ENOSPC/EDQUOT), INTERNAL (EIO and other I/O
  //                     errors): the write failed and the store enters a
  //                     sticky error state: every later Put returns that
  //                     error until ClearError(); Read of verified pieces
  //                     keeps working;
  //   the error of a Commit() that this Put triggered (see Commit()).
  // After any error nothing about this piece is visible or recorded.
  absl::Status Put(ReleasePieceIndex piece, absl::string_view data,
                   const MerkleProof& proof);

  // A verified piece (pread from its file) and its proof. Recorded pieces
  // are trusted and not hashed again. NOT_FOUND unless held (also for an
  // index out of range); filesystem errors otherwise (which do not put the
  // store into the error state).
  absl::StatusOr<ServedPiece> Read(ReleasePieceIndex piece) const;

  // Records the pending verified pieces: with `durable`, fdatasyncs the data
  // files and proof slots they were written to, then appends their records
  // to the journal (and fdatasyncs it). Cheap when nothing is pending. On
  // error the batch is forgotten (those pieces are no longer Has(), so they
  // are fetched again: their data may not have reached the disk) and the
  // store enters the sticky error state. Runs in the error state too.
  absl::Status Commit();

  // OK, or the error that stopped writes.
  absl::Status error() const;
  // Leaves the error state (after room was made); the next Put tries again.
  void ClearError();
  // Whether the filesystem holding the store has room for a whole piece of
  // the release (true when it cannot tell): worth a ClearError() after a
  // full disk.
  bool HasRoomForAPiece() const;

  // Bytes allocated on disk for the store's files (st_blocks * 512 over the
  // manifest, data files, proof slots and journal): grows with the pieces
  // written, since the files are sparse. Stats every file; for metrics.
  uint64_t disk_bytes() const;

  const std::string& dir() const { return dir_; }
  // <dir>/data: the release's files, for install.
  std::string data_dir() const;

 private:
  struct Parts;
  explicit ReleaseStore(Parts parts);

  // VerifyPiece against the signed root of the piece's file, with the
  // piece and file named in the error.
  absl::Status Verify(ReleasePieceIndex piece, const FilePiece& where,
                      absl::string_view data, const MerkleProof& proof) const;
  // OK if a Put of `piece` may go ahead: no sticky error, not held, not
  // being written.
  absl::Status CheckPutAllowed(ReleasePieceIndex piece) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes a verified piece's bytes and proof in place.
  absl::Status WritePiece(ReleasePieceIndex piece, const FilePiece& where,
                          absl::string_view data, const MerkleProof& proof);
  // Makes a written piece visible and pending; true if a commit is due.
  bool MarkVerified(ReleasePieceIndex piece, FileIndex file, uint64_t length);
  // Syncs the data files and proof slots of a batch.
  absl::Status SyncBatch(const std::vector<uint32_t>& files, bool proofs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // Forgets a batch whose commit failed.
  void Forget(const std::vector<ReleasePieceIndex>& batch,
              const absl::Status& status);
  absl::StatusOr<std::shared_ptr<const OpenFile>> DataFile(
      FileIndex file) const;
  // Runs `io` on the file opened with O_DIRECT. False if direct I/O is off
  // or was refused (then it is off for good and the caller uses DataFile);
  // errors that the page cache would meet too are returned.
  absl::StatusOr<bool> DirectIo(
      FileIndex file,
      absl::FunctionRef<absl::Status(const OpenFile&)> io) const;

  FileOps& files_;
  const std::string dir_;
  const Manifest manifest_;
  const ReleasePieces pieces_;
  const ReleaseStoreOptions options_;
  // Per file: its path under data/ and its signed pieces root (unset for
  // an empty file).
  const std::vector<std::string> data_paths_;
  const std::vector<Digest> roots_;
  // Bytes per proof slot.
  const uint64_t proof_slot_;
  const std::unique_ptr<OpenFile> proofs_;
  mutable OpenFileCache data_files_;
  // The same files opened with O_DIRECT, while direct_io_ holds.
  mutable OpenFileCache direct_files_;
  mutable std::atomic<bool> direct_io_;

  // Serializes commits, so journal appends never interleave.
  absl::Mutex commit_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  const std::unique_ptr<VerifiedJournal> journal_
      ABSL_PT_GUARDED_BY(commit_mu_);

  mutable absl::Mutex mu_;
  Bitfield held_ ABSL_GUARDED_BY(mu_);
  uint32_t held_count_ ABSL_GUARDED_BY(mu_);
  uint64_t held_bytes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint32_t> in_flight_ ABSL_GUARDED_BY(mu_);
  // Verified since the last commit, and the files they were written to.
  std::vector<ReleasePieceIndex> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint32_t> dirty_files_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::agent
