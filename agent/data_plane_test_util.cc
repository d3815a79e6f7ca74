#include "agent/data_plane_test_util.h"

#include <glog/logging.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shoal::agent {

std::string TestBytes(size_t size, int seed) {
  std::string s(size, '\0');
  uint32_t x = 2654435761u * static_cast<uint32_t>(seed + 1);
  for (char& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

MerkleProof TestProof(int length, int seed) {
  MerkleProof proof(length);
  for (int i = 0; i < length; ++i) {
    proof[i].fill(static_cast<uint8_t>(seed + i));
  }
  return proof;
}

v1::PeerAddress TestPeer(const std::string& id, const std::string& dc) {
  v1::PeerAddress p;
  p.set_peer_id(id);
  p.set_address(absl::StrCat(id, ".example:7000"));
  p.set_datacenter(dc);
  return p;
}

GrpcSecurity InsecureSecurity() {
  return *GrpcSecurity::Create({.insecure = true});
}

void RecordingListener::OnBitfield(std::string bitfield) {
  Add(absl::StrCat("bitfield ", absl::BytesToHexString(bitfield)));
}

void RecordingListener::OnHave(std::vector<ReleasePieceIndex> pieces) {
  for (ReleasePieceIndex p : pieces) Add(absl::StrCat("have ", p.value()));
}

void RecordingListener::OnPeers(std::vector<v1::PeerAddress> peers) {
  std::vector<std::string> ids;
  for (const v1::PeerAddress& p : peers) ids.push_back(p.peer_id());
  Add(absl::StrCat("peers ", absl::StrJoin(ids, ",")));
}

void RecordingListener::OnClosed(absl::Status why) {
  Add(absl::StrCat("closed ", absl::StatusCodeToString(why.code())));
}

bool RecordingListener::WaitFor(const std::string& prefix, int n) {
  absl::MutexLock lock(&mu_);
  auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::count_if(events_.begin(), events_.end(),
                         [&](const std::string& e) {
                           return absl::StartsWith(e, prefix);
                         }) >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&seen), kTestTimeout);
}

std::vector<std::string> RecordingListener::events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

void RecordingListener::Add(std::string event) {
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(event));
}

PeerSession::PieceCallback FetchResult::Callback() {
  return [this](absl::StatusOr<ReceivedPiece> result) {
    result_ = std::move(result);
    done_.Notify();
  };
}

absl::StatusOr<ReceivedPiece> FetchResult::Wait() {
  if (!done_.WaitForNotificationWithTimeout(kTestTimeout)) {
    return absl::InternalError("the test gave up waiting for the fetch");
  }
  return std::move(result_);
}

RunningServer ServeOnLoopback(grpc::Service& service,
                              const GrpcSecurity& security) {
  grpc::ServerBuilder builder;
  security.ConfigureServer(builder);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0",
                           *security.ServerCredentials("127.0.0.1:0"), &port);
  builder.RegisterService(&service);
  RunningServer running{builder.BuildAndStart(), ""};
  CHECK(running.server != nullptr && port > 0) << "cannot serve on loopback";
  running.address = absl::StrCat("127.0.0.1:", port);
  return running;
}

void HoldingPacer::Acquire(uint64_t bytes,
                           absl::AnyInvocable<void() &&> proceed) {
  absl::MutexLock lock(&mu_);
  requests_.push_back(bytes);
  waiting_.push_back(std::move(proceed));
}

bool HoldingPacer::WaitForRequests(size_t n) {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_.size() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), kTestTimeout);
}

void HoldingPacer::GrantWaiting() {
  std::vector<absl::AnyInvocable<void() &&>> grants;
  {
    absl::MutexLock lock(&mu_);
    grants.swap(waiting_);
  }
  for (auto& grant : grants) std::move(grant)();
}

std::vector<uint64_t> HoldingPacer::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

}  // namespace shoal::agent
