#pragma once

// Checks of the untrusted strings in tracker requests: peer ids, release
// ids and references, peer addresses, locality labels, origin URLs and
// channel names. Each refusal is INVALID_ARGUMENT with a message that quotes
// the (escaped, shortened) value and says what is accepted.
//
// All functions are pure and thread-safe.

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::tracker {

inline constexpr size_t kPeerIdChars = 32;
inline constexpr size_t kReleaseIdChars = 64;
inline constexpr size_t kMaxLocalityLabelBytes = 64;
// A DNS name (253) plus ':' and a port, or a bracketed IPv6 address.
inline constexpr size_t kMaxAddressBytes = 260;
inline constexpr size_t kMaxOriginUrlBytes = 2048;

// OK iff `peer_id` is 32 lower-case hex digits.
absl::Status ValidatePeerId(absl::string_view peer_id);

// The release id in lower case; INVALID_ARGUMENT unless `id` is 64 hex
// digits (either case).
absl::StatusOr<std::string> ParseReleaseId(absl::string_view id);

// OK iff `address` is host:port a peer can dial: a DNS name or IPv4 address
// ([A-Za-z0-9.-]), or an IPv6 address in brackets; a port 1..65535. The
// wildcard hosts 0.0.0.0 and [::] are refused: they name no machine.
absl::Status ValidateAddress(absl::string_view address);

// OK iff `label` is a datacenter or rack label: 1 to kMaxLocalityLabelBytes
// characters of [A-Za-z0-9._-]. `what` names it in the message.
absl::Status ValidateLocalityLabel(absl::string_view what,
                                   absl::string_view label);

// OK iff `url` is an http:// or https:// URL with a host, printable ASCII
// without spaces, at most kMaxOriginUrlBytes, and no user:password@ part
// (every agent is sent the URLs).
absl::Status ValidateOriginUrl(absl::string_view url);

// A channel "<release name>/<label>", e.g. "game-server/stable".
struct ChannelName {
  std::string release_name;
  std::string label;
};
// Both parts must pass ValidateReleaseLabel.
absl::StatusOr<ChannelName> ParseChannel(absl::string_view channel);

// How a request names a release: by id, or by name and version.
struct ReleaseRef {
  std::string id;  // lower-case; empty when named by name@version
  std::string name;
  std::string version;
};
// Accepts a release id (64 hex digits) or "name@version" with both labels
// valid.
absl::StatusOr<ReleaseRef> ParseReleaseRef(absl::string_view release);

// `value` quoted for a message: C-escaped, cut at 100 bytes.
std::string QuoteForMessage(absl::string_view value);

}  // namespace shoal::tracker
