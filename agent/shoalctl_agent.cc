#include "agent/shoalctl_agent.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <iostream>

#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/control_client.h"
#include "agent/shoalctl_fetch.h"
#include "agent/status_text.h"
#include "google/protobuf/util/json_util.h"

namespace shoal::agent {
namespace {

constexpr absl::Duration kCallTimeout = absl::Seconds(30);

struct Command {
  const char* name;
  int operands;
  const char* usage;  // after "shoalctl [--agent=SOCKET] "
  const char* help;   // what it does and its flags
};

constexpr char kAgentFlagHelp[] =
    "  --agent=SOCKET      the agent's control socket (default $SHOAL_AGENT, else "
    "/var/lib/shoal/agent.sock)\n";

const Command kCommands[] = {
    {"fetch", 1, "fetch NAME@VERSION|ID [--dest=DIR] [--timeout=DURATION] [--json]",
     "Asks the local agent for a release and waits until it is complete and verified.\n"
     "Progress goes to stderr: on a terminal one line rewritten in place (percent,\n"
     "bytes, rate, ETA, peers, share from peers versus origin, proof failures, bans);\n"
     "otherwise a plain line every 5 seconds and at the end. Without --dest the\n"
     "release stays in the agent's store, seeding. If the agent reports the release\n"
     "FAILED (disk full, a write error), shoalctl says why and asks again with backoff.\n"
     "\n"
     "  --dest=DIR          install the verified release as DIR/NAME@VERSION and\n"
     "                      switch DIR/current to it (a relative DIR is taken from here)\n"
     "  --timeout=DURATION  give up after this long (90s, 10m, 1h); default: no limit\n"
     "  --json              print {release_id, name, version, size, seconds,\n"
     "                      bytes_from_peers, bytes_from_origin} on stdout at the end\n"},
    {"status", 0, "status [--json]",
     "Shows the agent (peer id, address, locality, disk use and quota), every release\n"
     "it holds or downloads (progress, sources, proof failures, bans, pin, installs,\n"
     "channels, errors) and the channels it follows.\n"
     "\n"
     "  --json              print the agent's StatusResponse as one JSON object\n"
     "                      (proto field names; 64-bit numbers are strings)\n"},
    {"list", 0, "list",
     "One line per release: name@version, short id, state, percent verified, size,\n"
     "whether it is pinned, and the directories where it is installed as current.\n"},
    {"remove", 1, "remove NAME@VERSION|ID",
     "Stops downloading or seeding a release and deletes it from the agent's store.\n"
     "Installed copies are not touched.\n"},
    {"pin", 1, "pin NAME@VERSION|ID",
     "Pins a release the agent holds: it is never evicted to make room under the\n"
     "agent's --disk_quota.\n"},
    {"unpin", 1, "unpin NAME@VERSION|ID",
     "Unpins a release: it may be evicted again, least recently used first, when the\n"
     "agent needs room under its --disk_quota.\n"},
};

const Command* FindCommand(absl::string_view name) {
  for (const Command& c : kCommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

int UsageError(const Command& command, absl::string_view problem) {
  std::cerr << "shoalctl: " << problem << "\nusage: shoalctl [--agent=SOCKET] " << command.usage
            << "\n(see shoalctl " << command.name << " --help)\n";
  return 2;
}

int Fail(absl::string_view what, const absl::Status& status) {
  std::cerr << "shoalctl: " << what << (what.empty() ? "" : ": ") << status.message() << "\n";
  return 1;
}

// Flags that only some commands take, given to another.
int CheckFlags(const Command& command, const AgentCommandFlags& flags) {
  const absl::string_view name = command.name;
  if (!flags.dest.empty() && name != "fetch") return UsageError(command, "--dest is for fetch");
  if (flags.timeout != absl::InfiniteDuration() && name != "fetch") {
    return UsageError(command, "--timeout is for fetch");
  }
  if (flags.json && name != "fetch" && name != "status") {
    return UsageError(command, "--json is for fetch and status");
  }
  return 0;
}

int RunStatus(ControlClient& client, bool json) {
  absl::StatusOr<v1::StatusResponse> response = client.Status(kCallTimeout);
  if (!response.ok()) return Fail("", response.status());
  if (!json) {
    std::cout << StatusText(*response);
    return 0;
  }
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string text;
  auto printed = google::protobuf::util::MessageToJsonString(*response, &text, options);
  if (!printed.ok()) {
    std::cerr << "shoalctl: cannot print the status as JSON: " << printed.message() << "\n";
    return 1;
  }
  std::cout << text << "\n";
  return 0;
}

int RunList(ControlClient& client) {
  absl::StatusOr<v1::StatusResponse> response = client.Status(kCallTimeout);
  if (!response.ok()) return Fail("", response.status());
  std::cout << ListTable(*response);
  return 0;
}

int RunPin(ControlClient& client, const std::string& release, bool pinned) {
  absl::StatusOr<v1::ReleaseStatus> status = client.Pin(release, pinned, kCallTimeout);
  if (!status.ok())
    return Fail(absl::StrCat("cannot ", pinned ? "pin " : "unpin ", release), status.status());
  std::cout << (pinned ? "pinned " : "unpinned ") << status->name() << "@" << status->version()
            << " (" << ShortId(status->release_id()) << ")"
            << (pinned ? ": never evicted for the disk quota" : "") << "\n";
  return 0;
}

int RunRemove(ControlClient& client, const std::string& release) {
  absl::StatusOr<std::string> id = client.Remove(release, kCallTimeout);
  if (!id.ok()) return Fail(absl::StrCat("cannot remove ", release), id.status());
  std::cout << "removed " << release << " (" << ShortId(*id) << ")\n";
  return 0;
}

ProgressPrinter::Options TerminalOptions() {
  ProgressPrinter::Options options;
  options.tty = isatty(STDERR_FILENO) == 1;
  winsize size = {};
  if (options.tty && ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0) options.width = size.ws_col;
  return options;
}

int RunFetchCommand(ControlClient& client, const AgentCommandFlags& flags,
                    const std::string& release) {
  FetchOptions options;
  options.release = release;
  options.timeout = flags.timeout;
  options.json = flags.json;
  options.progress = TerminalOptions();
  if (!flags.dest.empty()) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) {
      return Fail("", absl::FailedPreconditionError(
                          "cannot tell the current directory to make --dest absolute"));
    }
    options.dest = AbsolutePath(cwd, flags.dest);
  }
  return RunFetch(client, options, std::cout, std::cerr);
}

}  // namespace

std::string AgentSocketPath(const std::string& flag, const char* env) {
  if (!flag.empty()) return flag;
  if (env != nullptr && *env != '\0') return env;
  return kDefaultAgentSocket;
}

bool IsAgentCommand(absl::string_view command) { return FindCommand(command) != nullptr; }

std::optional<std::string> AgentCommandHelpFor(int argc, const char* const* argv) {
  bool help = false;
  std::optional<absl::string_view> command;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") {
      if (!command.has_value() && i + 1 < argc) command = argv[i + 1];
      break;
    }
    if (arg == "--help" || arg == "-help" || arg == "-h") {
      help = true;
    } else if (arg.size() < 2 || arg[0] != '-') {
      if (!command.has_value()) command = arg;
    } else if (!absl::StrContains(arg, '=')) {
      // "--flag value": the value is not the command.
      const absl::CommandLineFlag* flag =
          absl::FindCommandLineFlag(absl::StripPrefix(arg.substr(1), "-"));
      if (flag != nullptr && !flag->IsOfType<bool>()) ++i;
    }
  }
  if (!help || !command.has_value() || !IsAgentCommand(*command)) return std::nullopt;
  return AgentCommandHelp(*command);
}

std::string AgentCommandHelp(absl::string_view name) {
  const Command* command = FindCommand(name);
  if (command == nullptr) return "";
  return absl::StrCat(
      "usage: shoalctl [--agent=SOCKET] ", command->usage, "\n\n", command->help, kAgentFlagHelp,
      "\nExit status: 0 done; 1 failed, with the reason on stderr; 2 wrong usage.\n");
}

int RunAgentCommand(const AgentCommandFlags& flags, const std::vector<std::string>& args) {
  const Command* command = args.empty() ? nullptr : FindCommand(args[0]);
  if (command == nullptr) {
    std::cerr << "shoalctl: not an agent command: " << (args.empty() ? "" : args[0]) << "\n";
    return 2;
  }
  if (static_cast<int>(args.size()) - 1 != command->operands) {
    return UsageError(*command, command->operands == 0
                                    ? absl::StrCat(command->name, " takes no operands")
                                    : absl::StrCat(command->name, " takes one release"));
  }
  if (int rc = CheckFlags(*command, flags); rc != 0) return rc;
  const std::string socket = AgentSocketPath(flags.agent, getenv("SHOAL_AGENT"));
  // Say at once, and plainly, when nobody listens there.
  if (absl::Status up = ProbeAgentSocket(socket); !up.ok()) return Fail("", up);
  absl::StatusOr<std::unique_ptr<ControlClient>> client = ControlClient::Create(socket);
  if (!client.ok())
    return Fail(absl::StrCat("cannot use the agent's socket ", socket), client.status());
  const absl::string_view name = command->name;
  if (name == "fetch") return RunFetchCommand(**client, flags, args[1]);
  if (name == "status") return RunStatus(**client, flags.json);
  if (name == "list") return RunList(**client);
  if (name == "remove") return RunRemove(**client, args[1]);
  return RunPin(**client, args[1], name == "pin");
}

std::string AbsolutePath(absl::string_view cwd, absl::string_view path) {
  const std::string joined =
      path.substr(0, 1) == "/" ? std::string(path) : absl::StrCat(cwd, "/", path);
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(joined, '/', absl::SkipEmpty())) {
    if (part != ".") parts.push_back(part);
  }
  return absl::StrCat("/", absl::StrJoin(parts, "/"));
}

}  // namespace shoal::agent
