#include "common/paths.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace shoal {
namespace {

// Paths are quoted in messages; very long ones are cut so that one hostile
// path cannot flood a log.
constexpr size_t kMaxQuotedBytes = 200;

std::string Quote(absl::string_view s) {
  if (s.size() <= kMaxQuotedBytes) {
    return absl::StrCat("\"", absl::CHexEscape(s), "\"");
  }
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kMaxQuotedBytes)),
                      "...\" (", s.size(), " bytes)");
}

absl::Status PathError(absl::string_view path, absl::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("path ", Quote(path), " ", reason));
}

// Decodes the UTF-8 sequence at the start of `s` into `code_point` and
// returns its length, or returns 0 unless the bytes are the shortest encoding
// of a Unicode scalar value (so overlong forms such as "\xc0\xaf" for '/',
// surrogates and values past U+10FFFF are all refused).
size_t DecodeUtf8(absl::string_view s, char32_t& code_point) {
  const auto byte = [s](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  size_t length;
  char32_t smallest;
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2, smallest = 0x80, code_point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, smallest = 0x800, code_point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, smallest = 0x10000, code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (s.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  if (code_point < smallest || code_point > 0x10FFFF) return 0;
  if (code_point >= 0xD800 && code_point <= 0xDFFF) return 0;
  return length;
}

bool IsControl(char32_t c) { return c < 0x20 || (c >= 0x7F && c <= 0x9F); }

// Checks every character: valid UTF-8, no control characters, no backslash.
absl::Status CheckCharacters(absl::string_view path) {
  for (size_t i = 0; i < path.size();) {
    char32_t c;
    size_t length = DecodeUtf8(path.substr(i), c);
    if (length == 0) {
      return PathError(path, absl::StrCat("is not valid UTF-8 at byte ", i));
    }
    if (IsControl(c)) {
      return PathError(path,
                       absl::StrCat("has a control character at byte ", i));
    }
    if (c == '\\') {
      return PathError(path, absl::StrCat("has a backslash at byte ", i,
                                          " (separate segments with '/')"));
    }
    i += length;
  }
  return absl::OkStatus();
}

bool IsLabelChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' || c == '-';
}

}  // namespace

absl::Status ValidateRelativePath(absl::string_view path) {
  if (path.empty()) return PathError(path, "is empty");
  if (path.size() > kMaxRelativePathBytes) {
    return PathError(
        path, absl::StrCat("is longer than ", kMaxRelativePathBytes, " bytes"));
  }
  if (absl::Status status = CheckCharacters(path); !status.ok()) {
    return status;
  }
  if (path.front() == '/') {
    return PathError(path, "is absolute (starts with '/')");
  }
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty()) {
      return PathError(path, "has an empty segment (\"//\" or a trailing '/')");
    }
    if (segment == "." || segment == "..") {
      return PathError(path, absl::StrCat("has a \"", segment, "\" segment"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateReleaseLabel(absl::string_view what,
                                  absl::string_view label) {
  const std::string quoted = Quote(label);
  if (label.empty() || label.size() > kMaxReleaseLabelBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("release ", what, " ", quoted, " must be 1 to ",
                     kMaxReleaseLabelBytes, " characters long"));
  }
  if (label.front() == '.' || label.front() == '-') {
    return absl::InvalidArgumentError(absl::StrCat(
        "release ", what, " ", quoted, " must not start with '.' or '-'"));
  }
  for (size_t i = 0; i < label.size(); ++i) {
    if (!IsLabelChar(label[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "release ", what, " ", quoted, " has ", Quote(label.substr(i, 1)),
          " at byte ", i, " (allowed: A-Z a-z 0-9 . _ + -)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace shoal
