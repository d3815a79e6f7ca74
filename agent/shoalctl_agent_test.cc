#include "agent/shoalctl_agent.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "agent/control_client.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

TEST(AbsolutePath, JoinsRelativePathsToTheWorkingDirectory) {
  EXPECT_EQ(AbsolutePath("/home/ops", "dest"), "/home/ops/dest");
  EXPECT_EQ(AbsolutePath("/home/ops", "./dest/"), "/home/ops/dest");
  EXPECT_EQ(AbsolutePath("/", "dest//x"), "/dest/x");
  EXPECT_EQ(AbsolutePath("/home/ops", "../srv"), "/home/ops/../srv");
}

TEST(AbsolutePath, KeepsAbsolutePaths) {
  EXPECT_EQ(AbsolutePath("/home/ops", "/srv/game"), "/srv/game");
  EXPECT_EQ(AbsolutePath("/home/ops", "/srv/./game/"), "/srv/game");
  EXPECT_EQ(AbsolutePath("/home/ops", "/"), "/");
}

TEST(AgentSocketPath, PrefersTheFlagThenTheEnvironment) {
  EXPECT_EQ(AgentSocketPath("/run/a.sock", "/run/b.sock"), "/run/a.sock");
  EXPECT_EQ(AgentSocketPath("", "/run/b.sock"), "/run/b.sock");
  EXPECT_EQ(AgentSocketPath("", ""), kDefaultAgentSocket);
  EXPECT_EQ(AgentSocketPath("", nullptr), "/var/lib/shoal/agent.sock");
}

TEST(AgentCommandHelp, CoversEveryCommand) {
  for (const char* command : {"fetch", "status", "list", "remove", "pin", "unpin"}) {
    EXPECT_TRUE(IsAgentCommand(command)) << command;
    const std::string help = AgentCommandHelp(command);
    EXPECT_TRUE(absl::StartsWith(help, std::string("usage: shoalctl [--agent=SOCKET] ") + command))
        << help;
    EXPECT_TRUE(absl::StrContains(help, "--agent=SOCKET")) << help;
  }
  EXPECT_TRUE(absl::StrContains(AgentCommandHelp("fetch"), "--dest=DIR"));
  EXPECT_TRUE(absl::StrContains(AgentCommandHelp("fetch"), "--timeout=DURATION"));
  EXPECT_EQ(AgentCommandHelp("rollout"), "");
  EXPECT_FALSE(IsAgentCommand("rollout"));
}

TEST(AgentCommandHelpFor, FindsTheCommandBesideHelp) {
  const char* fetch[] = {"shoalctl", "--agent=/run/a.sock", "fetch", "game@1", "--help"};
  std::optional<std::string> help = AgentCommandHelpFor(5, fetch);
  ASSERT_TRUE(help.has_value());
  EXPECT_EQ(*help, AgentCommandHelp("fetch"));
  const char* pin[] = {"shoalctl", "-h", "pin"};
  EXPECT_EQ(AgentCommandHelpFor(3, pin), AgentCommandHelp("pin"));
}

TEST(AgentCommandHelpFor, IsNothingWithoutHelpOrForOtherCommands) {
  const char* no_help[] = {"shoalctl", "fetch", "game@1"};
  EXPECT_FALSE(AgentCommandHelpFor(3, no_help).has_value());
  const char* tracker[] = {"shoalctl", "rollout", "--help"};
  EXPECT_FALSE(AgentCommandHelpFor(3, tracker).has_value());
  const char* bare[] = {"shoalctl", "--help"};
  EXPECT_FALSE(AgentCommandHelpFor(2, bare).has_value());
}

// A path in a fresh directory under /tmp: the test's own temporary
// directory may be longer than a unix socket address allows.
std::string TempPath(const char* name) {
  char dir[] = "/tmp/shoalctl_agent_test.XXXXXX";
  if (mkdtemp(dir) == nullptr) return std::string("/nonexistent/") + name;
  return std::string(dir) + "/" + name;
}

TEST(ProbeAgentSocket, SaysTheAgentIsNotRunningWithoutASocket) {
  const std::string path = TempPath("missing.sock");
  absl::Status status = ProbeAgentSocket(path);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_TRUE(absl::StartsWith(status.message(), "agent not running at " + path)) << status;
  rmdir(path.substr(0, path.rfind('/')).c_str());
}

TEST(ProbeAgentSocket, SaysTheAgentIsNotRunningWhenNobodyListens) {
  const std::string path = TempPath("stale.sock");
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(address.sun_path));
  memcpy(address.sun_path, path.data(), path.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  // Bound but not listening: what a killed agent leaves behind, as far as
  // connect() can tell.
  absl::Status status = ProbeAgentSocket(path);
  EXPECT_TRUE(absl::StartsWith(status.message(), "agent not running at " + path)) << status;
  ASSERT_EQ(listen(fd, 1), 0);
  EXPECT_TRUE(ProbeAgentSocket(path).ok());
  close(fd);
  unlink(path.c_str());
  rmdir(path.substr(0, path.rfind('/')).c_str());
}

}  // namespace
}  // namespace shoal::agent
