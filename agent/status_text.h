#pragma once

// The text `shoalctl status` and `shoalctl list` print for a person: pure
// functions of the agent's StatusResponse.

#include <string>

#include "absl/strings/string_view.h"
#include "shoal/v1/agent.pb.h"

namespace shoal::agent {

// "seeding", "downloading", "starting", "failed", "unknown".
std::string StateName(v1::ReleaseState state);

// The first 12 hex digits of a release id (all of it if shorter).
std::string ShortId(absl::string_view release_id);

// One release on one line, as `shoalctl status` has always printed it:
// "game@1 100.0% 13/13 pieces, 12.0 MiB, 1.5 MiB/s, 2 peers, 80% from peers,
//  0 proof failures, 0 banned".
std::string StatusLine(const v1::ReleaseStatus& status);

// `shoalctl status`: the agent (identity, locality, disk use and quota),
// then each release with its status line and lines for its id, pin,
// installs, channels and error, then the channels the agent follows.
// Ends with a newline.
std::string StatusText(const v1::StatusResponse& response);

// `shoalctl list`: a header, then one aligned row per release: name@version,
// short id, state, percent, size, pinned, and the directories where it is
// installed as current. Ends with a newline.
std::string ListTable(const v1::StatusResponse& response);

}  // namespace shoal::agent
