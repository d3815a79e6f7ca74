#pragma once

// Checks for names that come from signed but untrusted-in-shape metadata: file
// paths inside a release and release labels. A manifest is signed, yet its
// paths are still treated as hostile input: a verifier refuses anything that
// could climb out of the install directory or mean different files on
// different systems. The checks accept only the canonical spelling of a path
// and never rewrite one, so a path has exactly one accepted form.
//
// All functions are pure and thread-safe.

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shoal {

// Longest accepted path in a release, in bytes (Linux's PATH_MAX).
inline constexpr size_t kMaxRelativePathBytes = 4096;
// Longest accepted release name or version, in bytes.
inline constexpr size_t kMaxReleaseLabelBytes = 128;

// OK iff `path` is already a relative, normalized, '/'-separated path:
// non-empty; valid UTF-8 (overlong encodings, surrogates and code points past
// U+10FFFF are refused); no NUL or other control character (C0, DEL or C1);
// no backslash; no leading '/'; no empty segment ("a//b", a trailing '/');
// no "." or ".." segment; at most kMaxRelativePathBytes bytes.
// Otherwise INVALID_ARGUMENT with a message quoting the (escaped) path and
// giving the reason, e.g. `path "a/../b" has a ".." segment`.
absl::Status ValidateRelativePath(absl::string_view path);

// OK iff `label` is a release name or version: 1 to kMaxReleaseLabelBytes
// characters of [A-Za-z0-9._+-], not starting with '.' or '-'. `what` names
// the label in the message ("name" or "version"). Otherwise INVALID_ARGUMENT,
// e.g. `release name "my app" has " " at byte 2 (allowed: A-Z a-z 0-9 . _ +
// -)`.
absl::Status ValidateReleaseLabel(absl::string_view what,
                                  absl::string_view label);

}  // namespace shoal
