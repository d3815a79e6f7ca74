#include "tracker/request_checks.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/paths.h"

namespace shoal::tracker {
namespace {

bool IsLowerHex(char c) {
  return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
}

bool IsLocalityChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
}

bool IsHostChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '-';
}

bool IsIpv6Char(char c) {
  return absl::ascii_isxdigit(c) || c == ':' || c == '.';
}

absl::Status AddressError(absl::string_view address, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "peer address ", QuoteForMessage(address), " ", why,
      " (expected host:port, e.g. 10.1.2.3:7881 or [fd00::5]:7881)"));
}

absl::Status ValidateHost(absl::string_view address, absl::string_view host) {
  if (host.empty()) return AddressError(address, "has no host");
  if (host.front() == '[') {
    absl::string_view inner = host.substr(1);
    if (inner.empty() || inner.back() != ']') {
      return AddressError(address, "has an unclosed '['");
    }
    inner.remove_suffix(1);
    for (char c : inner) {
      if (!IsIpv6Char(c)) return AddressError(address, "has a bad IPv6 host");
    }
    if (inner.empty() || inner == "::") {
      return AddressError(address, "names the wildcard host, not this machine");
    }
    return absl::OkStatus();
  }
  for (char c : host) {
    if (c == ':') return AddressError(address, "needs brackets around IPv6");
    if (!IsHostChar(c)) return AddressError(address, "has a bad host");
  }
  if (host == "0.0.0.0") {
    return AddressError(address, "names the wildcard host, not this machine");
  }
  return absl::OkStatus();
}

}  // namespace

std::string QuoteForMessage(absl::string_view value) {
  constexpr size_t kMaxQuoted = 100;
  return absl::StrCat("\"", absl::CHexEscape(value.substr(0, kMaxQuoted)),
                      value.size() > kMaxQuoted ? "...\"" : "\"");
}

absl::Status ValidatePeerId(absl::string_view peer_id) {
  bool ok = peer_id.size() == kPeerIdChars;
  for (char c : peer_id) ok = ok && IsLowerHex(c);
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("peer id ", QuoteForMessage(peer_id), " must be ",
                   kPeerIdChars, " lower-case hex digits"));
}

absl::StatusOr<std::string> ParseReleaseId(absl::string_view id) {
  bool ok = id.size() == kReleaseIdChars;
  for (char c : id) ok = ok && absl::ascii_isxdigit(c);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("release id ", QuoteForMessage(id), " must be ",
                     kReleaseIdChars, " hex digits"));
  }
  return absl::AsciiStrToLower(id);
}

absl::Status ValidateAddress(absl::string_view address) {
  if (address.size() > kMaxAddressBytes) {
    return AddressError(
        address, absl::StrCat("is longer than ", kMaxAddressBytes, " bytes"));
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) {
    return AddressError(address, "has no port");
  }
  const absl::string_view host = address.substr(0, colon);
  const absl::string_view port_text = address.substr(colon + 1);
  uint32_t port = 0;
  bool digits = !port_text.empty() && port_text.size() <= 5;
  for (char c : port_text) digits = digits && absl::ascii_isdigit(c);
  if (!digits || !absl::SimpleAtoi(port_text, &port) || port == 0 ||
      port > 65535) {
    return AddressError(address, "needs a port from 1 to 65535");
  }
  return ValidateHost(address, host);
}

absl::Status ValidateLocalityLabel(absl::string_view what,
                                   absl::string_view label) {
  bool ok = !label.empty() && label.size() <= kMaxLocalityLabelBytes;
  for (char c : label) ok = ok && IsLocalityChar(c);
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", QuoteForMessage(label), " must be 1 to ",
                   kMaxLocalityLabelBytes, " characters of A-Z a-z 0-9 . _ -"));
}

absl::Status ValidateOriginUrl(absl::string_view url) {
  auto error = [url](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("origin URL ", QuoteForMessage(url), " ", why));
  };
  if (url.size() > kMaxOriginUrlBytes) {
    return error(absl::StrCat("is longer than ", kMaxOriginUrlBytes, " bytes"));
  }
  for (unsigned char c : url) {
    if (c <= ' ' || c >= 0x7f) {
      return error("has a space, control or non-ASCII character");
    }
  }
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://") &&
      !absl::ConsumePrefix(&rest, "https://")) {
    return error("must start with http:// or https://");
  }
  const absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty()) return error("has no host");
  if (absl::StrContains(authority, '@')) {
    return error("must not carry credentials (user:password@); agents see it");
  }
  return absl::OkStatus();
}

absl::StatusOr<ChannelName> ParseChannel(absl::string_view channel) {
  const size_t slash = channel.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("channel ", QuoteForMessage(channel),
                     " must be <release name>/<label>, e.g. "
                     "game-server/stable"));
  }
  ChannelName result{std::string(channel.substr(0, slash)),
                     std::string(channel.substr(slash + 1))};
  absl::Status status = ValidateReleaseLabel("name", result.release_name);
  if (status.ok()) status = ValidateReleaseLabel("channel", result.label);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "channel ", QuoteForMessage(channel), ": ", status.message()));
  }
  return result;
}

absl::StatusOr<ReleaseRef> ParseReleaseRef(absl::string_view release) {
  const size_t at = release.find('@');
  if (at == absl::string_view::npos) {
    if (release.size() != kReleaseIdChars) {
      return absl::InvalidArgumentError(absl::StrCat(
          "release ", QuoteForMessage(release),
          " must be a release id (64 hex digits) or name@version"));
    }
    ReleaseRef ref;
    auto id = ParseReleaseId(release);
    if (!id.ok()) return id.status();
    ref.id = *std::move(id);
    return ref;
  }
  ReleaseRef ref;
  ref.name = std::string(release.substr(0, at));
  ref.version = std::string(release.substr(at + 1));
  absl::Status status = ValidateReleaseLabel("name", ref.name);
  if (status.ok()) status = ValidateReleaseLabel("version", ref.version);
  if (!status.ok()) return status;
  return ref;
}

}  // namespace shoal::tracker
