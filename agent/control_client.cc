#include "agent/control_client.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_security.h"

namespace shoal::agent {
namespace {

void SetDeadline(grpc::ClientContext& context, absl::Time deadline) {
  if (deadline != absl::InfiniteFuture()) context.set_deadline(absl::ToChronoTime(deadline));
}

}  // namespace

absl::Status ProbeAgentSocket(const std::string& path) {
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("agent socket path ", path, " is longer than ",
                                                   sizeof(address.sun_path) - 1, " bytes"));
  }
  memcpy(address.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int error = errno;
  close(fd);
  if (rc == 0) return absl::OkStatus();
  switch (error) {
    case ENOENT:
      return absl::UnavailableError(
          absl::StrCat("agent not running at ", path, " (no socket there)"));
    case ECONNREFUSED:
      return absl::UnavailableError(
          absl::StrCat("agent not running at ", path, " (nothing listens on the socket)"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(
          absl::StrCat("may not open the agent's socket ", path,
                       ": permission denied (run shoalctl as the agent's user)"));
    default:
      return absl::UnavailableError(
          absl::StrCat("agent not running at ", path, " (", strerror(error), ")"));
  }
}

absl::StatusOr<std::unique_ptr<ControlClient>> ControlClient::Create(
    const std::string& socket_path) {
  absl::StatusOr<GrpcSecurity> security = GrpcSecurity::Create(TlsFlags{"", "", "", true});
  if (!security.ok()) return security.status();
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      security->MakeChannel("unix:" + socket_path);
  if (!channel.ok()) return channel.status();
  return absl::WrapUnique(
      new ControlClient(socket_path, v1::AgentControl::NewStub(*std::move(channel))));
}

absl::Status ControlClient::Explain(const grpc::Status& status) const {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // Either gRPC could not reach the agent, or the agent itself answered
    // UNAVAILABLE (its tracker and origin are unreachable): the socket says which.
    absl::Status probe = ProbeAgentSocket(socket_path_);
    if (!probe.ok()) return probe;
  }
  return FromGrpcStatus(status);
}

absl::StatusOr<v1::StatusResponse> ControlClient::Status(absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + timeout);
  v1::StatusResponse response;
  grpc::Status status = stub_->Status(&context, v1::StatusRequest(), &response);
  if (!status.ok()) return Explain(status);
  return response;
}

absl::StatusOr<v1::ReleaseStatus> ControlClient::Pin(const std::string& release, bool pinned,
                                                     absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + timeout);
  v1::PinRequest request;
  request.set_release(release);
  request.set_pinned(pinned);
  v1::ReleaseStatus response;
  grpc::Status status = stub_->Pin(&context, request, &response);
  if (!status.ok()) return Explain(status);
  return response;
}

absl::StatusOr<std::string> ControlClient::Remove(const std::string& release,
                                                  absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + timeout);
  v1::RemoveRequest request;
  request.set_release(release);
  v1::RemoveResponse response;
  grpc::Status status = stub_->Remove(&context, request, &response);
  if (!status.ok()) return Explain(status);
  return response.release_id();
}

std::unique_ptr<ControlClient::FetchStream> ControlClient::Fetch(const v1::FetchRequest& request,
                                                                 absl::Time deadline) {
  auto stream = absl::WrapUnique(new FetchStream(*this));
  SetDeadline(stream->context_, deadline);
  stream->reader_ = stub_->Fetch(&stream->context_, request);
  return stream;
}

absl::Status ControlClient::FetchStream::Finish() { return client_.Explain(reader_->Finish()); }

}  // namespace shoal::agent
