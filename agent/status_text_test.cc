#include "agent/status_text.h"

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

constexpr char kId[] = "3f2a9c1d0b4e77aa3f2a9c1d0b4e77aa3f2a9c1d0b4e77aa3f2a9c1d0b4e77aa";
constexpr char kOtherId[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

v1::ReleaseStatus Seeding() {
  v1::ReleaseStatus s;
  s.set_release_id(kId);
  s.set_name("game");
  s.set_version("1");
  s.set_state(v1::RELEASE_STATE_SEEDING);
  s.set_pieces_verified(13);
  s.set_total_pieces(13);
  s.set_total_size(12 * 1048576);
  s.set_bytes_verified(12 * 1048576);
  s.set_bytes_from_peers(9 * 1048576);
  s.set_bytes_from_origin(3 * 1048576);
  s.set_proof_failures(2);
  s.set_peers_banned(1);
  return s;
}

v1::StatusResponse Response() {
  v1::StatusResponse r;
  r.set_peer_id("0123456789abcdef0123456789abcdef");
  r.set_advertise("127.0.0.1:7080");
  r.set_datacenter("dc1");
  r.set_rack("r1");
  r.set_disk_bytes(12 * 1048576);
  *r.add_releases() = Seeding();
  v1::ReleaseStatus* other = r.add_releases();
  other->set_release_id(kOtherId);
  other->set_name("tools");
  other->set_version("2.0");
  other->set_state(v1::RELEASE_STATE_DOWNLOADING);
  other->set_total_size(1000);
  other->set_bytes_verified(250);
  return r;
}

TEST(StatusLine, KeepsItsFormat) {
  EXPECT_EQ(StatusLine(Seeding()),
            "game@1 100.0% 13/13 pieces, 12.0 MiB, 0.0 MiB/s, 0 peers, 75% from peers, "
            "2 proof failures, 1 banned");
}

TEST(StateName, IsLowerCase) {
  EXPECT_EQ(StateName(v1::RELEASE_STATE_SEEDING), "seeding");
  EXPECT_EQ(StateName(v1::RELEASE_STATE_FAILED), "failed");
  EXPECT_EQ(StateName(v1::RELEASE_STATE_UNSPECIFIED), "unknown");
}

TEST(StatusText, ShowsTheAgentAndEachRelease) {
  const std::string text = StatusText(Response());
  EXPECT_TRUE(absl::StartsWith(
      text,
      "agent 0123456789abcdef0123456789abcdef at 127.0.0.1:7080 (dc1/r1), 12 MiB on disk\n"
      "disk: 12.0 MiB used, no quota\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "  SEEDING  game@1 100.0% 13/13 pieces")) << text;
  EXPECT_TRUE(absl::StrContains(text, std::string("    id ") + kId + "\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "  DOWNLOADING  tools@2.0  25.0%")) << text;
  EXPECT_FALSE(absl::StrContains(text, "pinned")) << text;
}

TEST(StatusText, ShowsPinInstallsChannelsQuotaAndErrors) {
  v1::StatusResponse response = Response();
  response.set_disk_quota(48 * 1048576);
  v1::ReleaseStatus* game = response.mutable_releases(0);
  game->set_pinned(true);
  game->add_channels("game/stable");
  game->set_error("disk full");
  v1::Installation* installed = game->add_installs();
  installed->set_dir("/srv/game");
  installed->set_path("/srv/game/game@1");
  installed->set_current(true);
  installed->set_post_install("exited with status 3");
  v1::ChannelStatus* channel = response.add_channels();
  channel->set_channel("game/stable");
  channel->set_dir("/srv/game");
  channel->set_release_id(kId);
  channel->set_percent(50);
  channel->set_paused(true);
  channel->set_in_rollout(true);
  channel->set_installed_release_id(kOtherId);
  const std::string text = StatusText(response);
  EXPECT_TRUE(absl::StrContains(text, "disk: 12.0 MiB used of a 48.0 MiB quota (25%)\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "    pinned: never evicted for the disk quota\n")) << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "    installed: /srv/game/game@1 (/srv/game/current), "
                                "post-install exited with status 3 (FAILED)\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "    channels: game/stable\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "    error: disk full\n")) << text;
  EXPECT_TRUE(absl::StrContains(text,
                                "channels:\n  game/stable into /srv/game: game@1 at 50% "
                                "(paused), this agent is in; installed tools@2.0\n"))
      << text;
}

TEST(StatusText, SaysWhenThereAreNoReleases) {
  v1::StatusResponse response;
  EXPECT_TRUE(absl::StrContains(StatusText(response), "no releases\n"));
}

TEST(ListTable, HasOneAlignedRowPerRelease) {
  v1::StatusResponse response = Response();
  response.mutable_releases(0)->set_pinned(true);
  v1::Installation* installed = response.mutable_releases(0)->add_installs();
  installed->set_dir("/srv/game");
  installed->set_current(true);
  v1::Installation* old = response.mutable_releases(0)->add_installs();
  old->set_dir("/srv/old");
  old->set_current(false);
  std::vector<std::string> lines = absl::StrSplit(ListTable(response), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "RELEASE    ID            STATE        DONE    SIZE      PINNED  CURRENT IN");
  EXPECT_EQ(lines[1], "game@1     3f2a9c1d0b4e  seeding      100.0%  12.0 MiB  pinned  /srv/game");
  EXPECT_EQ(lines[2], "tools@2.0  001122334455  downloading  25.0%   1000 B    -       -");
}

TEST(ListTable, IsOnlyTheHeaderWithoutReleases) {
  EXPECT_EQ(ListTable(v1::StatusResponse()),
            "RELEASE  ID  STATE  DONE  SIZE  PINNED  CURRENT IN\n");
}

}  // namespace
}  // namespace shoal::agent
