#include "agent/status_text.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/progress_line.h"

namespace shoal::agent {
namespace {

std::string DisplayName(const v1::ReleaseStatus& status) {
  return absl::StrCat(status.name(), "@", status.version());
}

// "game@1" for a release id the agent holds, else its short id.
std::string NameOfId(const v1::StatusResponse& response, absl::string_view id) {
  for (const v1::ReleaseStatus& r : response.releases()) {
    if (r.release_id() == id) return DisplayName(r);
  }
  return ShortId(id);
}

std::string DiskLine(const v1::StatusResponse& response) {
  if (response.disk_quota() == 0) {
    return absl::StrCat("disk: ", FormatBytes(response.disk_bytes()), " used, no quota\n");
  }
  return absl::StrFormat("disk: %s used of a %s quota (%d%%)\n", FormatBytes(response.disk_bytes()),
                         FormatBytes(response.disk_quota()),
                         static_cast<int>(100.0 * response.disk_bytes() / response.disk_quota()));
}

std::string InstallLine(const v1::Installation& installed) {
  std::string line = absl::StrCat("    installed: ", installed.path());
  if (installed.current()) absl::StrAppend(&line, " (", installed.dir(), "/current)");
  if (!installed.post_install().empty()) {
    absl::StrAppend(&line, ", post-install ", installed.post_install(),
                    installed.post_install_ok() ? "" : " (FAILED)");
  }
  return line + "\n";
}

std::string ReleaseBlock(const v1::ReleaseStatus& r) {
  std::string text = absl::StrCat("  ", absl::AsciiStrToUpper(StateName(r.state())), "  ",
                                  StatusLine(r), "\n", "    id ", r.release_id(), "\n");
  if (r.pinned()) absl::StrAppend(&text, "    pinned: never evicted for the disk quota\n");
  for (const v1::Installation& installed : r.installs())
    absl::StrAppend(&text, InstallLine(installed));
  if (r.channels_size() > 0) {
    absl::StrAppend(&text, "    channels: ", absl::StrJoin(r.channels(), ", "), "\n");
  }
  if (!r.error().empty()) absl::StrAppend(&text, "    error: ", r.error(), "\n");
  return text;
}

std::string ChannelLine(const v1::StatusResponse& response, const v1::ChannelStatus& c) {
  std::string line = absl::StrCat("  ", c.channel(), " into ", c.dir(), ": ");
  if (c.release_id().empty()) {
    absl::StrAppend(&line, "no word from the tracker yet");
  } else {
    absl::StrAppend(&line, NameOfId(response, c.release_id()), " at ", c.percent(), "%",
                    c.paused() ? " (paused)" : "",
                    c.in_rollout() ? ", this agent is in" : ", this agent is not in yet");
  }
  if (!c.installed_release_id().empty()) {
    absl::StrAppend(&line, "; installed ", NameOfId(response, c.installed_release_id()));
  }
  if (!c.error().empty()) absl::StrAppend(&line, "; error: ", c.error());
  return line + "\n";
}

}  // namespace

std::string StateName(v1::ReleaseState state) {
  switch (state) {
    case v1::RELEASE_STATE_STARTING:
      return "starting";
    case v1::RELEASE_STATE_DOWNLOADING:
      return "downloading";
    case v1::RELEASE_STATE_SEEDING:
      return "seeding";
    case v1::RELEASE_STATE_FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

std::string ShortId(absl::string_view release_id) { return std::string(release_id.substr(0, 12)); }

std::string StatusLine(const v1::ReleaseStatus& s) {
  return absl::StrFormat(
      "%s %5.1f%% %d/%d pieces, %.1f MiB, %.1f MiB/s, %d peers, %d%% from peers, "
      "%d proof failures, %d banned",
      DisplayName(s), PercentComplete(s), s.pieces_verified(), s.total_pieces(),
      s.bytes_verified() / 1048576.0, s.download_rate() / 1048576.0, s.peers_connected(),
      PercentFromPeers(s), s.proof_failures(), s.peers_banned());
}

std::string StatusText(const v1::StatusResponse& response) {
  std::string text = absl::StrCat("agent ", response.peer_id(), " at ", response.advertise(), " (",
                                  response.datacenter(), "/", response.rack(), "), ",
                                  response.disk_bytes() / 1048576, " MiB on disk\n");
  absl::StrAppend(&text, DiskLine(response));
  if (response.releases_size() == 0) absl::StrAppend(&text, "no releases\n");
  for (const v1::ReleaseStatus& r : response.releases()) absl::StrAppend(&text, ReleaseBlock(r));
  if (response.channels_size() > 0) {
    absl::StrAppend(&text, "channels:\n");
    for (const v1::ChannelStatus& c : response.channels()) {
      absl::StrAppend(&text, ChannelLine(response, c));
    }
  }
  return text;
}

std::string ListTable(const v1::StatusResponse& response) {
  std::vector<std::vector<std::string>> rows = {
      {"RELEASE", "ID", "STATE", "DONE", "SIZE", "PINNED", "CURRENT IN"}};
  for (const v1::ReleaseStatus& r : response.releases()) {
    std::vector<std::string> current;
    for (const v1::Installation& installed : r.installs()) {
      if (installed.current()) current.push_back(installed.dir());
    }
    rows.push_back({DisplayName(r), ShortId(r.release_id()), StateName(r.state()),
                    absl::StrFormat("%.1f%%", PercentComplete(r)), FormatBytes(r.total_size()),
                    r.pinned() ? "pinned" : "-",
                    current.empty() ? "-" : absl::StrJoin(current, ",")});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string text;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i]);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    absl::StrAppend(&text, line, "\n");
  }
  return text;
}

}  // namespace shoal::agent
