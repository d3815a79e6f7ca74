#include "agent/verified_journal.h"

#include <fcntl.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

constexpr absl::string_view kMagic = "SHOALVJ1";
constexpr uint64_t kHeaderBodySize = kJournalHeaderSize - 4;
// Records read per pread when replaying.
constexpr uint64_t kReplayChunkRecords = 64 * 1024;

uint32_t Crc(uint32_t seed, const char* data, size_t size) {
  return static_cast<uint32_t>(
      crc32(seed, reinterpret_cast<const Bytef*>(data), size));
}

void PutU32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(v >> (8 * i));
}

uint32_t GetU32(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= uint32_t{static_cast<unsigned char>(in[i])} << (8 * i);
  }
  return v;
}

std::string EncodeHeader(const Digest& release, uint32_t num_pieces) {
  std::string header(kJournalHeaderSize, '\0');
  memcpy(header.data(), kMagic.data(), kMagic.size());
  memcpy(header.data() + 8, release.data(), release.size());
  PutU32(header.data() + 40, num_pieces);
  PutU32(header.data() + kHeaderBodySize,
         Crc(0, header.data(), kHeaderBodySize));
  return header;
}

// The header's crc if `header` is an intact header for `release`.
absl::StatusOr<uint32_t> CheckHeader(absl::string_view header,
                                     const std::string& path,
                                     const Digest& release,
                                     uint32_t num_pieces) {
  if (header.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError(
        absl::StrCat(path, " is not a verified-piece journal"));
  }
  const uint32_t crc = GetU32(header.data() + kHeaderBodySize);
  if (Crc(0, header.data(), kHeaderBodySize) != crc) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt header"));
  }
  Digest recorded;
  memcpy(recorded.data(), header.data() + 8, recorded.size());
  if (recorded != release) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " records release ", DigestToHex(recorded), ", not ",
                     DigestToHex(release)));
  }
  const uint32_t pieces = GetU32(header.data() + 40);
  if (pieces != num_pieces) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " records ", pieces, " pieces; the release has ", num_pieces));
  }
  return crc;
}

}  // namespace

VerifiedJournal::VerifiedJournal(FileOps& files, int fd, std::string path,
                                 uint32_t header_crc, uint32_t num_pieces,
                                 uint64_t end, bool durable)
    : files_(files),
      fd_(fd),
      path_(std::move(path)),
      header_crc_(header_crc),
      num_pieces_(num_pieces),
      durable_(durable),
      end_(end) {}

VerifiedJournal::~VerifiedJournal() { files_.Close(fd_); }

absl::StatusOr<std::unique_ptr<VerifiedJournal>> VerifiedJournal::Create(
    FileOps& files, const std::string& path, const Digest& release,
    uint32_t num_pieces, bool durable) {
  const std::string header = EncodeHeader(release, num_pieces);
  ASSIGN_OR_RETURN(const int fd,
                   files.Open(path, O_RDWR | O_CREAT | O_TRUNC, 0644));
  // Owned by the journal from here on, so every error path closes it.
  std::unique_ptr<VerifiedJournal> journal(new VerifiedJournal(
      files, fd, path, GetU32(header.data() + kHeaderBodySize), num_pieces,
      kJournalHeaderSize, durable));
  RETURN_IF_ERROR(files.Pwrite(fd, header, 0, path));
  if (durable) RETURN_IF_ERROR(files.DataSync(fd, path));
  return journal;
}

absl::StatusOr<VerifiedJournal::Opened> VerifiedJournal::Open(
    FileOps& files, const std::string& path, const Digest& release,
    uint32_t num_pieces, bool durable) {
  ASSIGN_OR_RETURN(const int fd, files.Open(path, O_RDWR, 0));
  Opened opened{nullptr, Bitfield(num_pieces), 0};
  opened.journal.reset(new VerifiedJournal(files, fd, path, 0, num_pieces,
                                           kJournalHeaderSize, durable));
  VerifiedJournal& journal = *opened.journal;
  ASSIGN_OR_RETURN(const FileInfo info, files.StatFd(fd, path));
  if (info.size < kJournalHeaderSize) {
    return absl::DataLossError(absl::StrCat(path, " is ", info.size,
                                            " bytes, shorter than its header"));
  }
  std::string header(kJournalHeaderSize, '\0');
  RETURN_IF_ERROR(files.Pread(fd, header.data(), header.size(), 0, path));
  ASSIGN_OR_RETURN(const uint32_t crc,
                   CheckHeader(header, path, release, num_pieces));
  journal.header_crc_ = crc;
  ASSIGN_OR_RETURN(journal.end_, journal.Replay(info.size, opened.recorded));
  if (journal.end_ < info.size) {
    opened.truncated_bytes = info.size - journal.end_;
    LOG(WARNING) << path << ": dropping a torn tail of "
                 << opened.truncated_bytes << " bytes";
    RETURN_IF_ERROR(files.Truncate(fd, journal.end_, path));
    if (durable) RETURN_IF_ERROR(files.DataSync(fd, path));
  }
  return opened;
}

absl::StatusOr<uint64_t> VerifiedJournal::Replay(uint64_t file_size,
                                                 Bitfield& recorded) {
  uint64_t offset = kJournalHeaderSize;
  std::string chunk;
  while (file_size - offset >= kJournalRecordSize) {
    const uint64_t records = std::min<uint64_t>(
        (file_size - offset) / kJournalRecordSize, kReplayChunkRecords);
    chunk.resize(records * kJournalRecordSize);
    RETURN_IF_ERROR(
        files_.Pread(fd_, chunk.data(), chunk.size(), offset, path_));
    for (uint64_t i = 0; i < records; ++i) {
      const char* record = chunk.data() + i * kJournalRecordSize;
      const uint32_t piece = GetU32(record);
      if (GetU32(record + 4) != Crc(header_crc_, record, 4) ||
          piece >= num_pieces_) {
        return offset;
      }
      recorded.Set(ReleasePieceIndex(piece));
      offset += kJournalRecordSize;
    }
  }
  return offset;
}

absl::Status VerifiedJournal::Append(
    absl::Span<const ReleasePieceIndex> pieces) {
  if (pieces.empty()) return absl::OkStatus();
  if (torn_) {
    RETURN_IF_ERROR(files_.Truncate(fd_, end_, path_));
    torn_ = false;
  }
  std::string batch(pieces.size() * kJournalRecordSize, '\0');
  for (size_t i = 0; i < pieces.size(); ++i) {
    CHECK_LT(pieces[i].value(), num_pieces_);
    char* record = batch.data() + i * kJournalRecordSize;
    PutU32(record, pieces[i].value());
    PutU32(record + 4, Crc(header_crc_, record, 4));
  }
  absl::Status status = files_.Pwrite(fd_, batch, end_, path_);
  if (status.ok() && durable_) status = files_.DataSync(fd_, path_);
  if (!status.ok()) {
    torn_ = true;
    return status;
  }
  end_ += batch.size();
  return absl::OkStatus();
}

}  // namespace shoal::agent
