#pragma once

// A client of one agent's control socket (shoal.v1.AgentControl), for
// shoalctl. Every error comes back as an absl::Status whose message a person
// can act on: a socket nobody listens on is "agent not running at PATH", one
// the caller may not open says so; errors from the agent keep its code and
// message. Thread-compatible.

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shoal/v1/agent.grpc.pb.h"

namespace shoal::agent {

class ControlClient {
 public:
  // Errors only for a path gRPC cannot use; the agent is first dialled by
  // the first call.
  static absl::StatusOr<std::unique_ptr<ControlClient>> Create(const std::string& socket_path);

  const std::string& socket_path() const { return socket_path_; }

  // Each call gives up after `timeout` (DEADLINE_EXCEEDED).
  absl::StatusOr<v1::StatusResponse> Status(absl::Duration timeout);
  absl::StatusOr<v1::ReleaseStatus> Pin(const std::string& release, bool pinned,
                                        absl::Duration timeout);
  // The id of the removed release.
  absl::StatusOr<std::string> Remove(const std::string& release, absl::Duration timeout);

  // One Fetch call: the release's statuses as the agent sends them.
  class FetchStream {
   public:
    // False at the end of the stream; then Finish() says how it ended.
    bool Next(v1::ReleaseStatus* status) { return reader_->Read(status); }
    // OK once the release is complete (and installed); else the agent's
    // error, or DEADLINE_EXCEEDED at the deadline.
    absl::Status Finish();

   private:
    friend class ControlClient;
    explicit FetchStream(ControlClient& client) : client_(client) {}
    ControlClient& client_;
    grpc::ClientContext context_;
    std::unique_ptr<grpc::ClientReader<v1::ReleaseStatus>> reader_;
  };
  // The stream ends by `deadline` at the latest (InfiniteFuture: never).
  std::unique_ptr<FetchStream> Fetch(const v1::FetchRequest& request, absl::Time deadline);

  // An RPC's status as an absl::Status with an actionable message.
  absl::Status Explain(const grpc::Status& status) const;

 private:
  ControlClient(std::string socket_path, std::unique_ptr<v1::AgentControl::Stub> stub)
      : socket_path_(std::move(socket_path)), stub_(std::move(stub)) {}

  const std::string socket_path_;
  std::unique_ptr<v1::AgentControl::Stub> stub_;
};

// Why nobody answers on the unix socket at `path`: OK when something
// accepts a connection there; UNAVAILABLE "agent not running at PATH (...)"
// when the socket is missing or refuses; PERMISSION_DENIED when the caller
// may not open it.
absl::Status ProbeAgentSocket(const std::string& path);

}  // namespace shoal::agent
