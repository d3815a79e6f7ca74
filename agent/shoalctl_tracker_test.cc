#include "agent/shoalctl_tracker.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "absl/flags/flag.h"
#include "agent/shoalctl_tracker_output.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Flags as shoalctl defines them, so that help detection can tell which
// flags take a separate value.
ABSL_FLAG(std::string, tracker, "", "trackers");
ABSL_FLAG(bool, json, false, "json");

namespace shoal::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::optional<std::string> Help(std::vector<const char*> argv) {
  argv.insert(argv.begin(), "shoalctl");
  return TrackerCommandHelp(static_cast<int>(argv.size()), argv.data());
}

TEST(TrackerCommandHelpTest, GivesTheHelpOfEachCommand) {
  EXPECT_THAT(Help({"rollout", "set", "--help"}).value_or(""),
              HasSubstr("rollout set CHANNEL NAME@VERSION|ID --percent=P [--paused]\n"));
  EXPECT_THAT(Help({"rollout", "pause", "-h"}).value_or(""),
              HasSubstr("Pauses the rollout"));
  EXPECT_THAT(Help({"--help", "rollout", "resume"}).value_or(""),
              HasSubstr("Lets a paused rollout"));
  EXPECT_THAT(Help({"rollout", "show", "game/stable", "-help"}).value_or(""),
              HasSubstr("each tracker's rollout of CHANNEL"));
  EXPECT_THAT(Help({"rollout", "--help"}).value_or(""),
              HasSubstr("rollout COMMAND --help"));
  EXPECT_THAT(Help({"swarm", "--help"}).value_or(""),
              HasSubstr("ORIGIN-COPIES"));
}

TEST(TrackerCommandHelpTest, SkipsTheValueOfASeparateFlag) {
  EXPECT_THAT(Help({"--tracker", "rollout", "swarm", "--help"}).value_or(""),
              HasSubstr("Swarm health"));
  // A bool flag takes no value: "swarm" is the command.
  EXPECT_THAT(Help({"--json", "swarm", "--help"}).value_or(""),
              HasSubstr("Swarm health"));
}

TEST(TrackerCommandHelpTest, LeavesOtherCommandsAndPlainRunsAlone) {
  EXPECT_FALSE(Help({"fetch", "app@1", "--help"}).has_value());
  EXPECT_FALSE(Help({"--help"}).has_value());
  EXPECT_FALSE(Help({"rollout", "show", "game/stable"}).has_value());
}

int RunCommand(std::vector<const char*> args, const TrackerCommandFlags& flags,
               std::string* err) {
  args.insert(args.begin(), "shoalctl");
  std::vector<char*> argv;
  for (const char* arg : args) argv.push_back(const_cast<char*>(arg));
  std::ostringstream out, err_stream;
  int code = RunTrackerCommand(argv, flags, out, err_stream);
  *err = err_stream.str();
  EXPECT_EQ(out.str(), "") << "nothing is printed on a usage error";
  return code;
}

TrackerCommandFlags Insecure() {
  TrackerCommandFlags flags;
  flags.trackers = "127.0.0.1:7070";
  flags.tls.insecure = true;
  return flags;
}

TEST(RunTrackerCommandTest, RolloutSetNeedsAPercent) {
  std::string err;
  EXPECT_EQ(
      RunCommand({"rollout", "set", "app/stable", "app@1"}, Insecure(), &err),
      kExitUsage);
  EXPECT_THAT(err, HasSubstr("--percent=P with P from 0 to 100"));
  TrackerCommandFlags flags = Insecure();
  flags.percent = 101;
  EXPECT_EQ(RunCommand({"rollout", "set", "app/stable", "app@1"}, flags, &err),
            kExitUsage);
}

TEST(RunTrackerCommandTest, PauseRefusesAPercent) {
  TrackerCommandFlags flags = Insecure();
  flags.percent = 10;
  std::string err;
  EXPECT_EQ(RunCommand({"rollout", "pause", "app/stable"}, flags, &err),
            kExitUsage);
  EXPECT_THAT(err, HasSubstr("keeps the channel's percent"));
}

TEST(RunTrackerCommandTest, NeedsTrackerAddresses) {
  TrackerCommandFlags flags = Insecure();
  flags.trackers = "";
  std::string err;
  EXPECT_EQ(RunCommand({"swarm"}, flags, &err), kExitUsage);
  EXPECT_THAT(err, HasSubstr("--tracker=HOST:PORT"));
  flags.trackers = "127.0.0.1:7070,";
  EXPECT_EQ(RunCommand({"swarm"}, flags, &err), kExitUsage);
}

TEST(RunTrackerCommandTest, NeedsTlsOrInsecure) {
  TrackerCommandFlags flags = Insecure();
  flags.tls.insecure = false;
  std::string err;
  EXPECT_EQ(RunCommand({"rollout", "show", "app/stable"}, flags, &err),
            kExitUsage);
  EXPECT_THAT(err, HasSubstr("--tls_cert"));
}

TEST(RunTrackerCommandTest, WrongOperandsPrintTheCommandsHelp) {
  std::string err;
  EXPECT_EQ(RunCommand({"rollout", "show"}, Insecure(), &err), kExitUsage);
  EXPECT_THAT(err, HasSubstr("rollout show CHANNEL"));
  EXPECT_EQ(RunCommand({"rollout", "launch", "app/stable"}, Insecure(), &err),
            kExitUsage);
  EXPECT_THAT(err, HasSubstr("rollout COMMAND --help"));
  EXPECT_EQ(RunCommand({"rollout", "show", "stable"}, Insecure(), &err),
            kExitUsage);
  EXPECT_THAT(err, HasSubstr("CHANNEL is <release name>/<label>"));
}

TEST(FormatTableTest, PadsColumnsToTheWidestCell) {
  EXPECT_EQ(FormatTable({{"A", "BB", "C"}, {"long", "x", "y"}}),
            "A     BB  C\n"
            "long  x   y\n");
}

TEST(HumanBytesTest, PicksAUnit) {
  EXPECT_EQ(HumanBytes(812), "812 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(12 * 1048576), "12.0 MiB");
  EXPECT_EQ(HumanBytes(uint64_t{3} << 30), "3.00 GiB");
}

SwarmRow Row(const std::string& tracker, const std::string& datacenter,
             uint32_t seeding, uint32_t downloading) {
  SwarmRow row;
  row.tracker = tracker;
  row.health.set_release_id(std::string(64, 'a'));
  row.health.set_name("app");
  row.health.set_version("1");
  row.health.set_datacenter(datacenter);
  row.health.set_peers_seeding(seeding);
  row.health.set_peers_downloading(downloading);
  row.health.set_bytes_from_origin(3 * 1048576);
  row.release_size = 2 * 1048576;
  return row;
}

TEST(PrintSwarmsTest, OneTablePerDatacenter) {
  std::ostringstream out;
  PrintSwarms({Row("t2", "dc2", 0, 0), Row("t1", "dc1", 1, 3)}, false, out);
  EXPECT_EQ(
      out.str(),
      "datacenter dc1\n"
      "TRACKER  RELEASE  ID        PEERS  COMPLETE  DOWNLOADING  "
      "STALLED  DONE  PEER-BYTES  ORIGIN-BYTES  ORIGIN-COPIES  LEASES\n"
      "t1       app@1    aaaaaaaa  4      1         3            0        "
      "25%   0 B         3.0 MiB       1.50           0\n"
      "\n"
      "datacenter dc2\n"
      "TRACKER  RELEASE  ID        PEERS  COMPLETE  DOWNLOADING  "
      "STALLED  DONE  PEER-BYTES  ORIGIN-BYTES  ORIGIN-COPIES  LEASES\n"
      "t2       app@1    aaaaaaaa  0      0         0            0        "
      "-     0 B         3.0 MiB       1.50           0\n");
}

TEST(PrintSwarmsTest, JsonIsOneObjectPerLine) {
  std::ostringstream out;
  SwarmRow unknown_size = Row("t1", "dc1", 2, 0);
  unknown_size.release_size.reset();
  PrintSwarms({unknown_size, Row("t2", "dc2", 1, 0)}, true, out);
  EXPECT_THAT(out.str(),
              HasSubstr("\"datacenter\":\"dc1\",\"leases_outstanding\":0,"
                        "\"name\":\"app\",\"origin_copies\":null,"
                        "\"peers\":2,"));
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("\"origin_copies\":1.5,"));
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  EXPECT_THAT(text, Not(HasSubstr("datacenter dc1")));
}

TEST(PrintSwarmsTest, SaysWhenThereIsNoSwarm) {
  std::ostringstream out;
  PrintSwarms({}, false, out);
  EXPECT_EQ(out.str(), "no swarm with live peers\n");
  std::ostringstream json;
  PrintSwarms({}, true, json);
  EXPECT_EQ(json.str(), "");
}

}  // namespace
}  // namespace shoal::agent
