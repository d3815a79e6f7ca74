#pragma once

// The agent's local control API (shoal.v1.AgentControl) on its unix socket.
// Handlers unpack, call the Agent, pack. Thread-safe.

#include "absl/time/time.h"
#include "shoal/v1/agent.grpc.pb.h"

namespace shoal::agent {

class Agent;

class ControlService final : public v1::AgentControl::Service {
 public:
  // `agent` must outlive the service.
  explicit ControlService(Agent& agent) : agent_(agent) {}

  grpc::Status Fetch(grpc::ServerContext* context, const v1::FetchRequest* request,
                     grpc::ServerWriter<v1::ReleaseStatus>* writer) override;
  grpc::Status Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                      v1::StatusResponse* response) override;
  grpc::Status Pin(grpc::ServerContext* context, const v1::PinRequest* request,
                   v1::ReleaseStatus* response) override;
  grpc::Status Remove(grpc::ServerContext* context, const v1::RemoveRequest* request,
                      v1::RemoveResponse* response) override;

 private:
  Agent& agent_;
};

}  // namespace shoal::agent
