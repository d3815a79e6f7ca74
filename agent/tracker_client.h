#pragma once

// An agent's client of its datacenter's tracker: the Tracker service on
// every replica given by --tracker=A,B, with failover between them.
//
// Each call goes to the replica that answered last. If that one is
// unreachable (UNAVAILABLE) or does not answer within the call timeout
// (DEADLINE_EXCEEDED), the same request goes to the next replica, and so on
// until each has been tried once; the replica that answers becomes the
// current one.
// Any other error (INVALID_ARGUMENT, NOT_FOUND, ...) is the tracker's answer
// and is returned at once, naming the replica. When no replica answers, the
// call fails with UNAVAILABLE naming each replica and its error.
//
// Failover sends a request a second time when the first replica may have
// acted on it without answering in time; every call here is safe to repeat
// (announces replace state, a lease re-asked by its holder is renewed).

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/grpc_security.h"
#include "grpcpp/grpcpp.h"
#include "shoal/v1/tracker.grpc.pb.h"

namespace shoal::agent {

// Splits a --tracker flag value, "HOST:PORT,HOST:PORT", into addresses.
// INVALID_ARGUMENT for an empty list or an empty entry.
absl::StatusOr<std::vector<std::string>> ParseTrackerAddresses(
    absl::string_view flag);

struct TrackerClientOptions {
  // HOST:PORT of each replica of one datacenter's tracker; at least one.
  std::vector<std::string> addresses;
  // Deadline of each unary call on each replica; also how long WatchChannel
  // waits for a replica to connect.
  absl::Duration call_timeout = absl::Seconds(5);
  // Deadline of a WatchChannel stream: it then ends with DEADLINE_EXCEEDED
  // and the caller watches again.
  absl::Duration watch_timeout = absl::Minutes(10);
};

// One WatchChannel stream, on one replica. Next() must not be called from
// two threads at once; Cancel() may be called from any thread. Destroying
// the watch cancels the stream.
class ChannelWatch {
 public:
  ~ChannelWatch();
  ChannelWatch(const ChannelWatch&) = delete;
  ChannelWatch& operator=(const ChannelWatch&) = delete;

  // Blocks until the channel's next rollout: its current one first, once the
  // channel has one, then every change. When the stream ends, returns why,
  // now and on every later call: CANCELLED after Cancel(), DEADLINE_EXCEEDED
  // after the watch timeout, UNAVAILABLE if the replica went away, or the
  // tracker's refusal (e.g. INVALID_ARGUMENT for a malformed channel).
  // Watching again is the caller's job.
  absl::StatusOr<v1::Rollout> Next();

  // Makes a blocked Next() return CANCELLED. Thread-safe.
  void Cancel();

  // The replica this stream runs on.
  const std::string& address() const { return address_; }

 private:
  friend class TrackerClient;
  ChannelWatch(std::string address, absl::Duration timeout);

  const std::string address_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::Rollout>> reader_;
  std::optional<absl::Status> ended_;
};

// Thread-safe: calls may run concurrently.
class TrackerClient {
 public:
  // Makes one channel per replica with `security` (GrpcSecurity::MakeChannel;
  // channels connect lazily, so an unreachable replica is no error here).
  // INVALID_ARGUMENT for no addresses or a non-positive timeout; errors of
  // MakeChannel (e.g. FAILED_PRECONDITION for an insecure non-loopback
  // address), naming the address.
  static absl::StatusOr<std::unique_ptr<TrackerClient>> Create(
      const GrpcSecurity& security, TrackerClientOptions options);

  absl::StatusOr<v1::AnnounceResponse> Announce(
      const v1::AnnounceRequest& request);
  absl::StatusOr<v1::GetPeersResponse> GetPeers(
      const v1::GetPeersRequest& request);
  absl::StatusOr<v1::OriginLeaseResponse> RequestOriginLease(
      const v1::OriginLeaseRequest& request);
  // `release` is a release id or "name@version".
  absl::StatusOr<v1::ReleaseInfo> GetRelease(const std::string& release);

  // Opens a WatchChannel stream on the first replica, from the current one,
  // that connects within the call timeout. UNAVAILABLE naming every replica
  // if none does.
  absl::StatusOr<std::unique_ptr<ChannelWatch>> WatchChannel(
      const std::string& channel);

  // The replica the next call tries first.
  std::string current_address() const;

 private:
  struct Replica {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::Tracker::Stub> stub;
  };
  template <typename Request, typename Response>
  using Method = grpc::Status (v1::Tracker::Stub::*)(grpc::ClientContext*,
                                                     const Request&, Response*);

  explicit TrackerClient(TrackerClientOptions options)
      : options_(std::move(options)) {}

  // Calls `method` on the current replica, failing over as described above.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(absl::string_view name,
                                Method<Request, Response> method,
                                const Request& request);

  const TrackerClientOptions options_;
  std::vector<Replica> replicas_;  // fixed after Create
  std::atomic<size_t> current_{0};
};

}  // namespace shoal::agent
