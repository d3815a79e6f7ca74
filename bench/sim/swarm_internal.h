#pragma once

// The swarm simulator's insides, shared by swarm.cc (time, messages, the
// data plane, the trackers) and swarm_engine.cc (each agent's download
// engine, as agent/download.cc drives its Scheduler). Not an API.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "agent/scheduler.h"
#include "agent/upload_gate.h"
#include "bench/sim/flow_network.h"
#include "bench/sim/scenario.h"
#include "bench/sim/swarm.h"
#include "bench/sim/tracker_model.h"
#include "common/bitfield.h"

namespace shoal::sim::internal {

using agent::PeerKey;

enum class EventKind : uint8_t {
  kStart,          // agent: its fetch starts
  kTick,           // agent: engine wake-up
  kAnnounce,       // agent: its announce loop is due (id: version)
  kTrackerCall,    // agent's call reaches its tracker's queue (id: payload)
  kTrackerServe,   // ... a tracker thread takes it up
  kTrackerReply,   // ... and the answer reaches the agent
  kWatch,          // agent (server) gets peer's Watch (generation: session)
  kWatchReply,     // agent gets peer's bitfield and peer list (id: payload)
  kHave,           // agent's verified piece reaches its watchers
  kPex,            // agent sends peer lists on its Watch streams
  kPeerList,       // agent gets a peer list (id: payload)
  kFetch,          // agent (server) gets a FetchPiece (id: call)
  kFetchRefused,   // agent gets NOT_FOUND or RESOURCE_EXHAUSTED (id: call)
  kPieceArrive,    // agent gets the last byte of a piece (id: call)
  kCallDeadline,   // agent's call runs out of time (id: call)
  kOriginRequest,  // an origin GET reaches the origin (id: call)
};

struct Event {
  absl::Duration at;
  uint64_t seq = 0;
  EventKind kind = EventKind::kTick;
  bool remote = false;  // kHave: for watchers in other datacenters
  bool busy = false;    // kFetchRefused: RESOURCE_EXHAUSTED, else NOT_FOUND
  int32_t agent = -1;
  int32_t peer = -1;
  uint32_t piece = 0;
  uint32_t id = 0;
  uint32_t generation = 0;

  bool operator>(const Event& o) const {
    return at != o.at ? at > o.at : seq > o.seq;
  }
};

// A blocking call on the engine's worker pool.
struct Task {
  enum Kind : uint8_t { kGetPeers, kLease, kOrigin };
  Kind kind = kGetPeers;
  std::vector<agent::OriginWant> wants;  // kLease
  uint32_t piece = 0;                    // kOrigin
};

// What a message carries besides ids.
struct Payload {
  TrackerCall call = TrackerCall::kAnnounce;
  absl::Duration done;  // when the tracker answers
  std::string bitfield;
  std::vector<int> peers;
  std::vector<uint32_t> granted, denied;
  Task task;
};

// A piece fetch: from a peer, or from the origin (server < 0).
struct Call {
  int asker = -1;
  int server = -1;
  uint32_t piece = 0;
  uint64_t length = 0;
  FlowId flow;
  bool flowing = false;
  bool live = false;
  uint32_t generation = 0;
};

struct Session {
  agent::Locality locality;
  uint32_t generation = 0;
};

struct SimAgent {
  int datacenter = 0;
  int rack = 0;  // global index
  std::string peer_id;
  bool seed = false;
  bool corrupt = false;
  Bitfield held{0};  // verified: what it serves and announces
  std::unique_ptr<agent::UploadGate> gate;

  // The download engine (downloaders only).
  std::unique_ptr<std::mt19937_64> rng;  // the engine's generator
  std::unique_ptr<agent::Scheduler> scheduler;
  bool engine_running = false;
  bool woken = false;
  bool tick_pending = false;
  absl::Duration next_tick;
  absl::flat_hash_map<int, Session> sessions;
  uint32_t session_generation = 0;
  std::vector<int> known;  // tracker and peer exchange, at most 1024
  absl::flat_hash_set<int> known_set;
  absl::flat_hash_map<int, absl::Duration> dial_backoff;
  absl::Duration last_refresh = -absl::InfiniteDuration();
  bool refresh_in_flight = false;
  bool lease_in_flight = false;
  int idle_workers = 0;
  std::deque<Task> queued_tasks;
  std::vector<uint32_t> calls;   // its fetches in flight
  std::vector<uint8_t> calling;  // fetches in flight, by piece
  int origin_fetches = 0;        // granted, not yet arrived

  // Serving side.
  std::vector<int> watchers;  // agents with a Watch on it
  std::mt19937_64 pex_rng;

  // Announce loop.
  uint32_t announce_version = 0;
  absl::Duration announce_at = absl::InfiniteDuration();
  absl::Duration last_announce = -absl::InfiniteDuration();

  absl::Duration started;
  std::optional<absl::Duration> completed;
};

class Swarm {
 public:
  explicit Swarm(const Scenario& scenario);
  absl::Status Init();
  SimResult Run(const ProgressFn& progress);

 private:
  // --- swarm.cc: time, messages, the data plane, announces.
  absl::Time Now() const { return absl::UnixEpoch() + now_; }
  void Push(absl::Duration at, Event e);
  void Dispatch(const Event& e);
  void Quantum(absl::Duration end);
  bool Finished(const ProgressFn& progress);
  absl::Duration Latency(int a, int b) const;
  agent::Locality LocalityOf(int a, int b) const;
  void Wake(int a);
  // Wakes `a` for a claim of `piece` it may act on now: a free request
  // slot (or endgame) and a piece it neither holds nor fetches.
  void WakeIfUseful(int a, uint32_t piece);
  uint32_t NewCall(int asker, int server, uint32_t piece, uint64_t length);
  void EndCall(uint32_t slot);
  void StopFlow(uint32_t slot);
  Call* LiveCall(const Event& e);
  void Account(int server, int asker, double bytes);
  void OnFetch(const Event& e);
  void OnFlowEnd(const FlowEnd& end);
  void OnPieceArrive(const Event& e);
  void OnFetchRefused(const Event& e);
  void OnCallDeadline(const Event& e);
  void OnOriginRequest(const Event& e);
  // `a` verified `piece`: serve it, tell its watchers, note completion.
  void Store(int a, uint32_t piece);
  void OnHave(const Event& e);
  void OnWatch(const Event& e);
  void OnWatchReply(const Event& e);
  void OnPex(const Event& e);
  void RequestAnnounce(int a);
  void OnAnnounce(const Event& e);
  void SendToTracker(int a, uint32_t payload);
  void OnTrackerCall(const Event& e);
  void OnTrackerServe(const Event& e);
  void OnTrackerReply(const Event& e);
  uint32_t NewPayload();
  void FreePayload(uint32_t id);

  // --- swarm_engine.cc: one agent's download engine.
  void StartFetch(int a);
  void Engine(int a);
  void ScheduleTick(int a);
  void OnTick(const Event& e);
  void RefreshPeers(int a);
  void ConnectMore(int a);
  void AskForOrigin(int a);
  void IssueRequests(int a);
  void Connect(int a, int b);
  void DropPeer(int a, int b);
  void StopEngine(int a);
  void HandleFailure(int a, int peer, uint32_t piece,
                     agent::FailureReason reason);
  void Learn(int a, const std::vector<int>& peers);
  std::vector<int> KnownPeers(int server, int asker);
  void RunOnWorker(int a, Task task);
  void StartTask(int a, Task task);
  void FinishTask(int a);
  void OnLeaseAnswer(int a, const Payload& p);
  SimResult Collect(absl::Duration wall);

  const Scenario& s_;
  const std::string release_id_;
  std::vector<uint64_t> lengths_;
  std::vector<SimAgent> agents_;
  std::vector<std::unique_ptr<TrackerModel>> trackers_;
  FlowNetwork net_;
  std::vector<LinkId> up_, down_, rack_up_, rack_down_, dc_up_, dc_down_;
  LinkId origin_up_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t seq_ = 0;
  absl::Duration now_;
  std::vector<int> woken_;
  std::vector<Call> calls_;
  std::vector<uint32_t> free_calls_;
  std::vector<Payload> payloads_;
  std::vector<uint32_t> free_payloads_;
  std::vector<LinkId> path_;             // scratch
  std::mt19937_64 rng_;                  // start times, pex phases
  std::vector<Bitfield> in_datacenter_;  // pieces some agent there holds
  int completed_ = 0;
  absl::Duration last_progress_;
  SimResult result_;
};

}  // namespace shoal::sim::internal
