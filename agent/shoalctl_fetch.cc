#include "agent/shoalctl_fetch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace shoal::agent {
namespace {

// One fetch from start to exit code. Not thread-safe.
class FetchCommand {
 public:
  FetchCommand(ControlClient& client, const FetchOptions& options, std::ostream& out,
               std::ostream& err)
      : client_(client), options_(options), out_(out), err_(err), printer_(err, options.progress) {}

  int Run();

 private:
  // One Fetch call, to its end.
  absl::Status Attempt(absl::Time deadline);
  int Succeeded();
  int Failed(const absl::Status& status);
  int TimedOut(const absl::Status& last_failure);
  std::string DisplayName() const;

  ControlClient& client_;
  const FetchOptions& options_;
  std::ostream& out_;
  std::ostream& err_;
  ProgressPrinter printer_;
  absl::Time start_;
};

int FetchCommand::Run() {
  start_ = absl::Now();
  const absl::Time deadline = options_.timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : start_ + options_.timeout;
  absl::Duration backoff = options_.first_backoff;
  absl::Status last_failure;
  for (;;) {
    absl::Status status = Attempt(deadline);
    if (status.ok()) return Succeeded();
    if (absl::IsDeadlineExceeded(status)) return TimedOut(last_failure);
    // ABORTED: the agent holds the release in the FAILED state (disk full,
    // a write error). It tries the store again by itself every few seconds,
    // so ask again rather than give up: the fetch may yet complete.
    if (!absl::IsAborted(status)) return Failed(status);
    last_failure = status;
    const absl::Duration wait = std::min(backoff, deadline - absl::Now());
    if (wait <= absl::ZeroDuration()) return TimedOut(last_failure);
    printer_.Note(absl::StrCat("shoalctl: ", DisplayName(),
                               " failed on the agent: ", status.message(), "; asking again in ",
                               absl::FormatDuration(absl::Ceil(wait, absl::Milliseconds(100)))));
    absl::SleepFor(wait);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status FetchCommand::Attempt(absl::Time deadline) {
  v1::FetchRequest request;
  request.set_release(options_.release);
  request.set_dest(options_.dest);
  std::unique_ptr<ControlClient::FetchStream> stream = client_.Fetch(request, deadline);
  v1::ReleaseStatus status;
  while (stream->Next(&status)) printer_.Update(absl::Now(), status);
  return stream->Finish();
}

std::string FetchCommand::DisplayName() const {
  if (!printer_.has_status()) return options_.release;
  return absl::StrCat(printer_.last().name(), "@", printer_.last().version());
}

int FetchCommand::Succeeded() {
  printer_.Done();
  if (!printer_.has_status()) {
    err_ << "shoalctl: the agent ended the fetch of " << options_.release << " without a status\n";
    return 1;
  }
  const v1::ReleaseStatus& s = printer_.last();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
  err_ << absl::StrFormat("%s complete and verified in %.1fs: %s\n", DisplayName(), seconds,
                          s.release_id());
  for (const v1::Installation& installed : s.installs()) {
    if (installed.dir() != options_.dest) continue;
    err_ << "installed: " << options_.dest << "/current -> " << installed.path() << "\n";
    if (!installed.post_install().empty()) {
      err_ << (installed.post_install_ok() ? "" : "warning: ") << "post-install command "
           << installed.post_install() << "\n";
    }
  }
  if (options_.json) {
    nlohmann::json j = {{"release_id", s.release_id()},
                        {"name", s.name()},
                        {"version", s.version()},
                        {"size", s.total_size()},
                        {"seconds", seconds},
                        {"bytes_from_peers", s.bytes_from_peers()},
                        {"bytes_from_origin", s.bytes_from_origin()}};
    out_ << j.dump() << "\n";
    out_.flush();
  }
  return 0;
}

int FetchCommand::Failed(const absl::Status& status) {
  printer_.Done();
  if (!options_.dest.empty() && printer_.has_status() &&
      printer_.last().state() == v1::RELEASE_STATE_SEEDING) {
    err_ << "shoalctl: " << DisplayName() << " is complete and verified but was not installed into "
         << options_.dest << ": " << status.message() << "\n";
  } else {
    err_ << "shoalctl: cannot fetch " << options_.release << ": " << status.message() << "\n";
  }
  return 1;
}

int FetchCommand::TimedOut(const absl::Status& last_failure) {
  printer_.Done();
  std::string reason;
  if (!printer_.has_status()) {
    reason = "the agent sent no progress yet (still resolving the release or its manifest)";
  } else {
    const v1::ReleaseStatus& s = printer_.last();
    reason = absl::StrFormat(
        "%.1f%% verified (%d of %d pieces), %d peers connected, %s from peers, "
        "%s from the origin",
        PercentComplete(s), s.pieces_verified(), s.total_pieces(), s.peers_connected(),
        FormatBytes(s.bytes_from_peers()), FormatBytes(s.bytes_from_origin()));
    if (!s.error().empty()) {
      absl::StrAppend(&reason, "; the agent reports: ", s.error());
    } else if (s.bytes_verified() < s.total_size() && s.peers_connected() == 0 &&
               printer_.rate() == 0) {
      absl::StrAppend(&reason,
                      "; nothing is arriving: no peer connected and no bytes from the "
                      "origin (see the agent's log)");
    }
  }
  if (!last_failure.ok() &&
      (!printer_.has_status() || last_failure.message() != printer_.last().error())) {
    absl::StrAppend(&reason, "; last failure: ", last_failure.message());
  }
  err_ << "shoalctl: " << DisplayName()
       << " not complete after --timeout=" << absl::FormatDuration(options_.timeout) << ": "
       << reason << "\n";
  return 1;
}

}  // namespace

int RunFetch(ControlClient& client, const FetchOptions& options, std::ostream& out,
             std::ostream& err) {
  return FetchCommand(client, options, out, err).Run();
}

}  // namespace shoal::agent
