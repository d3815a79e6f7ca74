#include "agent/control_service.h"

#include "agent/agent.h"
#include "common/grpc_security.h"

namespace shoal::agent {

// Streams the release's status four times a second, and at once when it
// completes (OK) or fails (the error), until the caller goes away. The
// download goes on either way.
grpc::Status ControlService::Fetch(grpc::ServerContext* context,
                                   const v1::FetchRequest* request,
                                   grpc::ServerWriter<v1::ReleaseStatus>* writer) {
  absl::StatusOr<std::string> id = agent_.Fetch(request->release());
  if (!id.ok()) return ToGrpcStatus(id.status());
  absl::StatusOr<v1::ReleaseStatus> status = agent_.ReleaseStatusOf(*id);
  while (!context->IsCancelled()) {
    if (!status.ok()) return ToGrpcStatus(status.status());
    if (status->state() == v1::RELEASE_STATE_SEEDING && !request->dest().empty()) {
      absl::StatusOr<v1::Installation> installed = agent_.InstallRelease(*id, request->dest());
      if (!installed.ok()) {
        writer->Write(*status);
        return ToGrpcStatus(installed.status());
      }
      status = agent_.ReleaseStatusOf(*id);
      if (!status.ok()) return ToGrpcStatus(status.status());
    }
    if (!writer->Write(*status)) return grpc::Status::CANCELLED;
    if (status->state() == v1::RELEASE_STATE_SEEDING) return grpc::Status::OK;
    if (status->state() == v1::RELEASE_STATE_FAILED) {
      return grpc::Status(grpc::StatusCode::ABORTED, status->error());
    }
    status = agent_.AwaitRelease(*id, absl::Milliseconds(250));
  }
  return grpc::Status::CANCELLED;
}

grpc::Status ControlService::Status(grpc::ServerContext*, const v1::StatusRequest*,
                                    v1::StatusResponse* response) {
  *response = agent_.Status();
  return grpc::Status::OK;
}

grpc::Status ControlService::Pin(grpc::ServerContext*, const v1::PinRequest* request,
                                 v1::ReleaseStatus* response) {
  absl::StatusOr<v1::ReleaseStatus> status = agent_.Pin(request->release(), request->pinned());
  if (!status.ok()) return ToGrpcStatus(status.status());
  *response = *std::move(status);
  return grpc::Status::OK;
}

grpc::Status ControlService::Remove(grpc::ServerContext*, const v1::RemoveRequest* request,
                                    v1::RemoveResponse* response) {
  absl::StatusOr<std::string> id = agent_.Remove(request->release());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_release_id(*id);
  return grpc::Status::OK;
}

}  // namespace shoal::agent
