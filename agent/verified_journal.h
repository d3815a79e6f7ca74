#pragma once

// The append-only record of which pieces of one release were verified and
// written, so that a restarted agent trusts them without hashing them again.
//
// File format (all integers little-endian):
//   header, 48 bytes:
//     "SHOALVJ1"          8 bytes, magic and format version
//     release digest     32 bytes, the raw SHA-256 that the release id spells
//     num_pieces          4 bytes, pieces in the release
//     header crc          4 bytes, CRC-32 (zlib) of the 44 bytes before it
//   then records, 8 bytes each:
//     piece               4 bytes, a ReleasePieceIndex
//     record crc          4 bytes, CRC-32 of `piece`, seeded with the header
//                         crc (so a record means nothing in another journal)
//
// A record is appended only after its piece's bytes were written (and, when
// durable, synced), so every record names a piece whose bytes are on disk.
// A crash can leave a torn or garbage tail: reading stops at the first
// record that is short, fails its crc or names a piece out of range, and
// Open() truncates the file there. Records after a bad one are lost, which
// costs only downloads: they were never reported as recorded.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "agent/file_ops.h"
#include "common/bitfield.h"
#include "common/sha256.h"

namespace shoal::agent {

inline constexpr uint64_t kJournalHeaderSize = 48;
inline constexpr uint64_t kJournalRecordSize = 8;

// One release's journal file, open for appending. Thread-compatible: the
// owner serializes calls. `files` must outlive the journal.
class VerifiedJournal {
 public:
  struct Opened;

  // Creates (or empties) the journal at `path` with a header for `release`,
  // synced when `durable`. Errors from the filesystem.
  static absl::StatusOr<std::unique_ptr<VerifiedJournal>> Create(
      FileOps& files, const std::string& path, const Digest& release,
      uint32_t num_pieces, bool durable);

  // Opens an existing journal, reads every valid record and truncates a
  // torn tail. DATA_LOSS if the header is short or corrupt;
  // FAILED_PRECONDITION if the journal belongs to another release or
  // piece count; other errors from the filesystem.
  static absl::StatusOr<Opened> Open(FileOps& files, const std::string& path,
                                     const Digest& release, uint32_t num_pieces,
                                     bool durable);

  ~VerifiedJournal();
  VerifiedJournal(const VerifiedJournal&) = delete;
  VerifiedJournal& operator=(const VerifiedJournal&) = delete;

  // Appends one record per piece in one write, then syncs when durable.
  // CHECK-fails on a piece out of range. On error the journal cuts the
  // partial append off again before its next append, so a failed batch
  // never hides later records; a record of the failed batch may survive a
  // crash, which is harmless (its piece was written).
  absl::Status Append(absl::Span<const ReleasePieceIndex> pieces);

  // Bytes of header and valid records.
  uint64_t size() const { return end_; }
  const std::string& path() const { return path_; }

 private:
  VerifiedJournal(FileOps& files, int fd, std::string path, uint32_t header_crc,
                  uint32_t num_pieces, uint64_t end, bool durable);

  // Reads records from the end of the header; returns where they stop.
  absl::StatusOr<uint64_t> Replay(uint64_t file_size, Bitfield& recorded);

  FileOps& files_;
  const int fd_;
  const std::string path_;
  // Seeds every record's crc; set once, from the header.
  uint32_t header_crc_;
  const uint32_t num_pieces_;
  const bool durable_;
  // End of the valid records: where the next append goes.
  uint64_t end_;
  // A failed append may have left bytes past end_ that must go first.
  bool torn_ = false;
};

// What Open() found.
struct VerifiedJournal::Opened {
  std::unique_ptr<VerifiedJournal> journal;
  // The recorded pieces.
  Bitfield recorded;
  // Bytes cut off the tail (0 after a clean shutdown).
  uint64_t truncated_bytes = 0;
};

}  // namespace shoal::agent
