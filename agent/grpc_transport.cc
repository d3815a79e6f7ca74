#include "agent/grpc_transport.h"

#include <glog/logging.h>
#include <grpcpp/alarm.h>
#include <grpcpp/generic/generic_stub.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/piece_assembler.h"
#include "shoal/v1/peer.grpc.pb.h"

namespace shoal::agent {

// The connections to one remote address. Immutable once built; thread-safe.
class RemoteConnections {
 public:
  RemoteConnections(const GrpcSecurity& security, const std::string& address,
                    int count);

  // Not OK when the address cannot be dialled at all; then there are no
  // connections and every call on them fails with this status.
  const absl::Status& status() const { return status_; }
  v1::Peer::Stub& watch_stub() { return *watch_stub_; }
  // The connections take turns.
  grpc::GenericStub& NextFetchStub() {
    return *fetch_stubs_[next_.fetch_add(1) % fetch_stubs_.size()];
  }

 private:
  absl::Status status_;
  std::unique_ptr<v1::Peer::Stub> watch_stub_;
  std::vector<std::unique_ptr<grpc::GenericStub>> fetch_stubs_;
  std::atomic<uint32_t> next_{0};
};

namespace {

constexpr char kFetchPieceMethod[] = "/shoal.v1.Peer/FetchPiece";

// A channel of its own connection. gRPC (1.51, measured) shares one
// connection among channels to the same address with equal arguments and
// credentials: with TLS each MakeChannel() has fresh credentials, which
// compare unequal, but insecure ones compare equal, so those get an extra
// argument. MakeChannel() still validates the address (loopback only).
absl::StatusOr<std::shared_ptr<grpc::Channel>> OwnConnection(
    const GrpcSecurity& security, const std::string& address, int index) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      security.MakeChannel(address);
  if (!channel.ok() || !security.insecure() || index == 0) return channel;
  grpc::ChannelArguments args = GrpcSecurity::ChannelArgs();
  args.SetInt("shoal.connection_index", index);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

}  // namespace

RemoteConnections::RemoteConnections(const GrpcSecurity& security,
                                     const std::string& address, int count) {
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        OwnConnection(security, address, i);
    if (!channel.ok()) {
      status_ = channel.status();
      fetch_stubs_.clear();
      return;
    }
    if (i == 0) watch_stub_ = v1::Peer::NewStub(*channel);
    fetch_stubs_.push_back(std::make_unique<grpc::GenericStub>(*channel));
  }
}

// Counts a transport's sessions and calls: its destructor waits for the
// calls to end, so that the last reference to a channel is dropped there and
// not on a gRPC callback thread (which, for the last channel of a process,
// shuts down gRPC's shared callback queue from one of its own threads).
// Thread-safe.
struct Liveness {
  absl::Mutex mu;
  int sessions ABSL_GUARDED_BY(mu) = 0;
  int calls ABSL_GUARDED_BY(mu) = 0;
};

namespace {

// Holds one count of a session or a call while it exists.
class LiveToken {
 public:
  enum Kind { kSession, kCall };
  LiveToken(std::shared_ptr<Liveness> liveness, Kind kind)
      : liveness_(std::move(liveness)), kind_(kind) {
    absl::MutexLock lock(&liveness_->mu);
    ++(kind_ == kSession ? liveness_->sessions : liveness_->calls);
  }
  ~LiveToken() {
    absl::MutexLock lock(&liveness_->mu);
    --(kind_ == kSession ? liveness_->sessions : liveness_->calls);
  }
  LiveToken(const LiveToken&) = delete;
  LiveToken& operator=(const LiveToken&) = delete;

 private:
  const std::shared_ptr<Liveness> liveness_;
  const Kind kind_;
};

// A call the session can cancel.
class Cancellable {
 public:
  virtual ~Cancellable() = default;
  // Must not run any reaction inline.
  virtual void Cancel() = 0;
};

// What a session and its calls share. A call may outlive its session (it
// ends when gRPC says so), so each holds a reference. Thread-safe.
class SessionCore {
 public:
  SessionCore(std::shared_ptr<Liveness> liveness, SessionListener& listener)
      : liveness_(std::move(liveness)), listener_(listener) {}

  const std::shared_ptr<Liveness>& liveness() const { return liveness_; }
  SessionListener& listener() { return listener_; }

  // Registers a call, and for a fetch the callback that reports it.
  void AddCall(Cancellable* call, PeerSession::PieceCallback done = nullptr) {
    absl::MutexLock lock(&mu_);
    if (closing_) call->Cancel();
    calls_.emplace(call, std::move(done));
  }

  // Runs `fn`, a listener call, unless the session is closing.
  template <typename Fn>
  void RunCallback(Fn&& fn) {
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return;
      in_callback_.push_back(std::this_thread::get_id());
    }
    std::forward<Fn>(fn)();
    ExitCallback();
  }

  // Reports a fetch's result to its callback unless the session is closing,
  // and forgets the call.
  void Complete(Cancellable* call, absl::StatusOr<ReceivedPiece> result);

  // Forgets a call; it touches the session no more.
  void RemoveCall(Cancellable* call) {
    absl::MutexLock lock(&mu_);
    calls_.erase(call);
  }

  // Cancels every call, waits for the callbacks running on other threads,
  // and destroys the fetch callbacks not run. Never waits for gRPC, so that
  // it may run on a transport thread (gRPC may need that very thread to end
  // the calls); the calls end later without calling back.
  void Close();

 private:
  void ExitCallback() {
    absl::MutexLock lock(&mu_);
    in_callback_.erase(std::find(in_callback_.begin(), in_callback_.end(),
                                 std::this_thread::get_id()));
  }

  const std::shared_ptr<Liveness> liveness_;
  SessionListener& listener_;
  absl::Mutex mu_;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  // Calls not yet ended, each alive while here; a fetch's callback is empty
  // once it runs or is taken by Close.
  absl::flat_hash_map<Cancellable*, PeerSession::PieceCallback> calls_
      ABSL_GUARDED_BY(mu_);
  // One entry per callback in progress, on the thread running it.
  std::vector<std::thread::id> in_callback_ ABSL_GUARDED_BY(mu_);
};

void SessionCore::Complete(Cancellable* call,
                           absl::StatusOr<ReceivedPiece> result) {
  PeerSession::PieceCallback done;
  {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find(call);
    if (!closing_) {
      done = std::move(it->second);
      in_callback_.push_back(std::this_thread::get_id());
    }
    calls_.erase(it);
  }
  if (done == nullptr) return;
  done(std::move(result));
  done = nullptr;  // Its captures go while Close would still wait for us.
  ExitCallback();
}

void SessionCore::Close() {
  const std::thread::id self = std::this_thread::get_id();
  std::vector<PeerSession::PieceCallback> unrun;
  absl::MutexLock lock(&mu_);
  closing_ = true;
  for (auto& [call, done] : calls_) {
    call->Cancel();
    if (done != nullptr) unrun.push_back(std::move(done));
  }
  auto only_own = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::all_of(in_callback_.begin(), in_callback_.end(),
                       [&](std::thread::id id) { return id == self; });
  };
  mu_.Await(absl::Condition(&only_own));
  // `unrun` is destroyed after the lock is released (declared before it).
}

// Reports a status from a gRPC thread (an alarm due now), standing in for a
// call that could not be made: the Watch (to the listener) or a fetch (to
// `done`). Deletes itself.
class FailedCall final : public Cancellable {
 public:
  static void Start(std::shared_ptr<SessionCore> core, absl::Status status,
                    PeerSession::PieceCallback done = nullptr) {
    auto* call = new FailedCall(std::move(core), std::move(status),
                                /*fetch=*/done != nullptr);
    call->core_->AddCall(call, std::move(done));
    call->alarm_.Set(std::chrono::system_clock::now(),
                     [call](bool) { call->Done(); });
  }

  void Cancel() override { alarm_.Cancel(); }

 private:
  FailedCall(std::shared_ptr<SessionCore> core, absl::Status status, bool fetch)
      : token_(core->liveness(), LiveToken::kCall),
        core_(std::move(core)),
        status_(std::move(status)),
        fetch_(fetch) {}

  void Done() {
    if (fetch_) {
      core_->Complete(this, status_);
    } else {
      core_->RunCallback([&] { core_->listener().OnClosed(status_); });
      core_->RemoveCall(this);
    }
    delete this;
  }

  const LiveToken token_;  // First in, last out.
  const std::shared_ptr<SessionCore> core_;
  const absl::Status status_;
  const bool fetch_;
  grpc::Alarm alarm_;
};

// The Watch call of one session: passes what the remote says to the
// listener. Reactions are serialized by gRPC, so listener calls are too.
// Deletes itself in OnDone.
class WatchCall final : public grpc::ClientReadReactor<v1::Availability>,
                        public Cancellable {
 public:
  static void Start(std::shared_ptr<SessionCore> core,
                    std::shared_ptr<RemoteConnections> remote,
                    v1::WatchRequest request) {
    auto* call =
        new WatchCall(std::move(core), std::move(remote), std::move(request));
    call->core_->AddCall(call);
    call->remote_->watch_stub().async()->Watch(&call->context_, &call->request_,
                                               call);
    call->StartRead(&call->message_);
    call->StartCall();
  }

  void Cancel() override { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows.
    if (!first_ && !message_.bitfield().empty()) {
      error_ = absl::DataLossError("remote sent a second bitfield");
      context_.TryCancel();
      return;
    }
    Deliver();
    first_ = false;
    message_.Clear();
    StartRead(&message_);
  }

  void OnDone(const grpc::Status& status) override {
    const absl::Status why = error_.ok() ? FromGrpcStatus(status) : error_;
    core_->RunCallback([&] { core_->listener().OnClosed(why); });
    core_->RemoveCall(this);
    delete this;
  }

 private:
  WatchCall(std::shared_ptr<SessionCore> core,
            std::shared_ptr<RemoteConnections> remote, v1::WatchRequest request)
      : token_(core->liveness(), LiveToken::kCall),
        core_(std::move(core)),
        remote_(std::move(remote)),
        request_(std::move(request)) {}

  void Deliver();

  // Destroyed in reverse: the context (with its channel reference) before
  // the connections it came from, and the count last.
  const LiveToken token_;
  const std::shared_ptr<SessionCore> core_;
  const std::shared_ptr<RemoteConnections> remote_;
  const v1::WatchRequest request_;
  grpc::ClientContext context_;
  v1::Availability message_;
  bool first_ = true;
  absl::Status error_;
};

void WatchCall::Deliver() {
  SessionListener& listener = core_->listener();
  if (first_) {
    core_->RunCallback(
        [&] { listener.OnBitfield(std::move(*message_.mutable_bitfield())); });
  }
  if (!message_.have().empty()) {
    std::vector<ReleasePieceIndex> pieces;
    pieces.reserve(message_.have_size());
    for (uint32_t piece : message_.have()) pieces.emplace_back(piece);
    core_->RunCallback([&] { listener.OnHave(std::move(pieces)); });
  }
  if (!message_.peers().empty()) {
    std::vector<v1::PeerAddress> peers(
        std::make_move_iterator(message_.mutable_peers()->begin()),
        std::make_move_iterator(message_.mutable_peers()->end()));
    core_->RunCallback([&] { listener.OnPeers(std::move(peers)); });
  }
}

// One FetchPiece call. It goes through the generic stub so that chunks
// arrive as raw buffers for PieceAssembler; on the wire a bidi call that
// sends one message is the same as a server-streaming one. Deletes itself
// in OnDone.
// A remote's own error. DATA_LOSS is kept for bytes that cannot be the
// piece (the engine bans for those); a remote that says its disk lost data
// failed honestly.
absl::Status RemoteFailure(const grpc::Status& status) {
  absl::Status s = FromGrpcStatus(status);
  if (!absl::IsDataLoss(s)) return s;
  return absl::InternalError(absl::StrCat("remote failed: ", s.message()));
}

class FetchCall final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
      public Cancellable {
 public:
  static void Start(std::shared_ptr<SessionCore> core,
                    std::shared_ptr<RemoteConnections> remote,
                    const v1::FetchPieceRequest& request,
                    uint64_t expected_length, absl::Duration timeout,
                    PeerSession::PieceCallback done);

  void Cancel() override { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows.
    error_ = assembler_.Add(response_);
    response_.Clear();
    if (!error_.ok()) {
      context_.TryCancel();
      return;
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::StatusOr<ReceivedPiece> result =
        !error_.ok()  ? error_
        : status.ok() ? assembler_.Finish()
                      : absl::StatusOr<ReceivedPiece>(RemoteFailure(status));
    core_->Complete(this, std::move(result));
    delete this;
  }

 private:
  FetchCall(std::shared_ptr<SessionCore> core,
            std::shared_ptr<RemoteConnections> remote, uint64_t expected_length)
      : token_(core->liveness(), LiveToken::kCall),
        core_(std::move(core)),
        remote_(std::move(remote)),
        assembler_(expected_length) {}

  // Destroyed in reverse, as in WatchCall.
  const LiveToken token_;
  const std::shared_ptr<SessionCore> core_;
  const std::shared_ptr<RemoteConnections> remote_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  PieceAssembler assembler_;
  absl::Status error_;
};

void FetchCall::Start(std::shared_ptr<SessionCore> core,
                      std::shared_ptr<RemoteConnections> remote,
                      const v1::FetchPieceRequest& request,
                      uint64_t expected_length, absl::Duration timeout,
                      PeerSession::PieceCallback done) {
  auto* call =
      new FetchCall(std::move(core), std::move(remote), expected_length);
  bool own_buffer = false;
  CHECK(grpc::SerializationTraits<v1::FetchPieceRequest>::Serialize(
            request, &call->request_, &own_buffer)
            .ok());
  call->context_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  call->core_->AddCall(call, std::move(done));
  call->remote_->NextFetchStub().PrepareBidiStreamingCall(
      &call->context_, kFetchPieceMethod, grpc::StubOptions(), call);
  call->StartWriteLast(&call->request_, grpc::WriteOptions());
  call->StartRead(&call->response_);
  call->StartCall();
}

// Thread-safe, as PeerSession requires.
class GrpcPeerSession final : public PeerSession {
 public:
  GrpcPeerSession(std::shared_ptr<RemoteConnections> remote,
                  std::shared_ptr<SessionCore> core, std::string release_id)
      : token_(core->liveness(), LiveToken::kSession),
        remote_(std::move(remote)),
        core_(std::move(core)),
        release_id_(std::move(release_id)) {}

  ~GrpcPeerSession() override { core_->Close(); }

  void FetchPiece(ReleasePieceIndex piece, uint64_t expected_length,
                  absl::Duration timeout, PieceCallback done) override {
    if (!remote_->status().ok()) {
      FailedCall::Start(core_, remote_->status(), std::move(done));
      return;
    }
    v1::FetchPieceRequest request;
    request.set_release_id(release_id_);
    request.set_piece(piece.value());
    FetchCall::Start(core_, remote_, request, expected_length, timeout,
                     std::move(done));
  }

 private:
  const LiveToken token_;
  const std::shared_ptr<RemoteConnections> remote_;
  const std::shared_ptr<SessionCore> core_;
  const std::string release_id_;
};

}  // namespace

GrpcTransport::GrpcTransport(GrpcSecurity security,
                             GrpcTransportOptions options)
    : security_(std::move(security)),
      options_(options),
      liveness_(std::make_shared<Liveness>()) {
  CHECK_GE(options_.connections_per_remote, 1);
}

GrpcTransport::~GrpcTransport() {
  absl::MutexLock lock(&liveness_->mu);
  CHECK_EQ(liveness_->sessions, 0) << "sessions outlive their GrpcTransport";
  liveness_->mu.Await(absl::Condition(
      +[](Liveness* l) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return l->calls == 0;  // Evaluated with l->mu held.
      },
      liveness_.get()));
  // remotes_ goes after this, dropping the channels on this thread.
}

std::shared_ptr<RemoteConnections> GrpcTransport::ConnectionsTo(
    const std::string& address) {
  absl::MutexLock lock(&mu_);
  // Drop the connections no session or call uses, once per as many Connects
  // as there are remotes (amortized O(1)). Only this map hands out
  // references, under mu_, so a use count of one is exact.
  if (++connects_since_sweep_ >= remotes_.size()) {
    absl::erase_if(remotes_,
                   [](const auto& kv) { return kv.second.use_count() == 1; });
    connects_since_sweep_ = 0;
  }
  std::shared_ptr<RemoteConnections>& remote = remotes_[address];
  if (remote == nullptr) {
    remote = std::make_shared<RemoteConnections>(
        security_, address, options_.connections_per_remote);
  }
  return remote;
}

std::unique_ptr<PeerSession> GrpcTransport::Connect(
    const v1::PeerAddress& remote, const std::string& release_id,
    const v1::PeerAddress& self, SessionListener& listener) {
  std::shared_ptr<RemoteConnections> connections =
      ConnectionsTo(remote.address());
  auto core = std::make_shared<SessionCore>(liveness_, listener);
  auto session =
      std::make_unique<GrpcPeerSession>(connections, core, release_id);
  if (connections->status().ok()) {
    v1::WatchRequest request;
    request.set_release_id(release_id);
    *request.mutable_asker() = self;
    WatchCall::Start(std::move(core), std::move(connections),
                     std::move(request));
  } else {
    FailedCall::Start(std::move(core), connections->status());
  }
  return session;
}

}  // namespace shoal::agent
