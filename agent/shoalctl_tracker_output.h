#pragma once

// What shoalctl's tracker commands print: help texts, tables and JSON lines.
// Pure functions of their arguments; thread-safe.

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "shoal/v1/tracker.pb.h"

namespace shoal::agent {

// Help of `rollout SUBCOMMAND` ("set", "pause", "resume", "show"); the
// overview of all four for "" or anything else.
std::string RolloutHelp(absl::string_view subcommand);

// Help of `swarm`.
std::string SwarmHelp();

// `rows` as columns padded to their widest cell, two spaces apart, one line
// per row, without trailing spaces.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// A byte count for people: "812 B", "1.5 KiB", "12.0 MiB", "3.25 GiB".
std::string HumanBytes(uint64_t bytes);

// One swarm as one tracker reported it.
struct SwarmRow {
  std::string tracker;
  v1::SwarmHealth health;
  std::optional<uint64_t> release_size;  // from the catalog, when known
};

// Prints `rows`: with `json`, one JSON object per row and line; otherwise a
// table per datacenter (datacenters, then releases, then trackers in order),
// or a line saying there is no swarm.
void PrintSwarms(std::vector<SwarmRow> rows, bool json, std::ostream& out);

}  // namespace shoal::agent
