#pragma once

// Download scheduling for one release, as pure code: which piece to ask of
// which peer, when to give up on a request or on a peer, and which pieces to
// ask the origin for. No sockets, threads or clocks: the download engine (or
// a simulator, see agent/swarm_sim.h) reports events, passes the time in
// explicitly and asks for decisions; randomness comes from an injected
// generator, so that a run replays exactly from its seed.
//
// The engine's loop, roughly:
//
//   peer events     -> OnBitfield, OnHave
//   piece verified  -> OnPieceVerified; cancel the copies it returns
//   fetch failed    -> OnPieceFailed
//   after events and now and then:
//     Expired(now)             -> cancel each, then OnPieceFailed(kTimeout)
//     PeersToDrop(now)         -> close each session, then RemovePeer
//     PiecesWantingOrigin(...) -> ask the tracker for leases, OnOriginLease
//     NextRequests(now)        -> FetchPiece for each assignment
//
// Rules (parameters in SchedulerConfig):
// - Local, then rarest first. A piece is asked only of peers at its nearest
//   tier: if a rack peer claims it, it is not fetched from another rack,
//   except as an endgame copy, while every rack holder's last request
//   failed, or while its only rack holders are complete peers (seeds) with
//   no free slot. Pieces are asked for in this order: fewest holders in this
//   rack (what the rack lacks flows in first), nearest tier, fewest usable
//   holders, random. A piece is asked of one peer at a time, except in
//   endgame.
// - Peer choice among the holders of a piece: nearest locality first; then
//   speed (peers measured at more than 2x, or 8x, the typical time per byte
//   come later); then peers that are not complete (a complete peer's upload
//   is best spent on what only it holds); then the fewest requests in
//   flight; then at random.
// - At most `max_in_flight_per_peer` requests per peer and `max_in_flight`
//   in all (endgame copies count only against the per-peer limit).
// - Endgame, once every missing piece is in flight: a piece whose newest
//   request has been out for `endgame_after` x the typical piece time is
//   asked of a further holder, up to `endgame_max_copies` copies, fewest
//   copies and oldest request first; the first verified copy cancels others.
// - Deadlines: `timeout_factor` x the piece length x the peer's observed
//   seconds per byte (smoothed over its pieces; `assumed_rate` until
//   measured), within [min_timeout, max_timeout].
// - Dropped peers (PeersToDrop): below `min_peer_rate` over `rate_window`
//   after requests were in flight for max(grace, rate_window) without a
//   break (kSlow); `max_consecutive_failures` timeouts or errors, or a
//   timeout before the peer delivered anything (kFailures); `max_refusals`
//   NOT_FOUNDs for pieces it claimed, each of which also withdraws that
//   claim (kLying); a malformed bitfield or have (kMisbehaving); a piece that
//   failed its proof (kBanned: banned for the life of this scheduler, and
//   AddPeer refuses it again).
// - A peer that failed a piece (timeout, error, refusal) is not asked for
//   that piece again for `failure_memory`; one dropped for failures or lying
//   counts as having failed every piece it claimed, for `failure_memory`, and
//   a banned one for good (the tracker still counts them as holders: see
//   OriginWant). A busy peer (kBusy) is left alone
//   for `busy_backoff`, doubled for each busy answer in a row up to 8x, with
//   jitter, and is not asked for that piece for 4 x busy_backoff.
// - Origin: pieces no usable peer claims, or whose usable holders all failed
//   them within `failure_memory`, are offered by PiecesWantingOrigin, at
//   most `max_origin_in_flight` awaiting a lease or being fetched; a denied
//   lease or a failed fetch is offered again after `origin_retry`. Pieces
//   being fetched from the origin are not asked of peers.
//
// Untrusted input: bitfields and haves come from peers; a wrong size or an
// out-of-range piece returns INVALID_ARGUMENT and marks the peer
// misbehaving. Lease answers come from the tracker and are checked against
// what was asked. Piece indices in OnPieceVerified/OnPieceFailed are the
// engine's own requests; out of range there is a bug (CHECK).

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/bitfield.h"
#include "common/types.h"

namespace shoal::agent {

// The caller's name for a connected peer; opaque to the scheduler.
using PeerKey = StrongInt<struct PeerKeyTag, uint64_t>;

// How near a peer is. Values index Progress::bytes_from_peers.
enum class Locality { kRack = 0, kDatacenter = 1, kRemote = 2 };
inline constexpr int kNumLocalities = 3;

// Why a request failed, as the engine saw it.
enum class FailureReason {
  kBadProof,  // The piece failed its Merkle proof (or was the wrong piece).
  kTimeout,   // Its deadline passed (Expired()).
  kRefused,   // NOT_FOUND for a piece the peer claimed to hold.
  kBusy,      // RESOURCE_EXHAUSTED: the peer's upload slots are full.
  kError,     // Anything else: connection lost, malformed stream, DATA_LOSS.
};

// What the engine should do with the peer after a failure.
enum class PeerVerdict { kKeep, kDrop, kBan };

enum class DropReason { kBanned, kSlow, kFailures, kLying, kMisbehaving };

absl::string_view DropReasonName(DropReason reason);

// Fetch `piece` (`length` bytes) from `peer`; give up at `deadline`.
struct Assignment {
  PeerKey peer;
  ReleasePieceIndex piece;
  uint64_t length = 0;
  absl::Time deadline;
  bool endgame = false;  // A second (or later) copy of a piece in flight.
};

// Stop the fetch of `piece` from `peer`; the scheduler has already
// forgotten it (no OnPieceFailed is needed, and one is ignored).
struct Cancel {
  PeerKey peer;
  ReleasePieceIndex piece;
};

struct Drop {
  PeerKey peer;
  DropReason reason;
};

// A piece to ask the tracker to lease. `holders_failed`: some peer claims
// it, but every such peer failed it recently; or none does, but one that did
// failed it recently or was banned (the tracker still counts that one as a
// holder). Tell the tracker so.
struct OriginWant {
  ReleasePieceIndex piece;
  bool holders_failed = false;
};

struct SchedulerConfig {
  // Few requests at a time: a piece is passed on only once it is complete,
  // so fewer, faster transfers keep the swarm's pipeline short (in the
  // swarm simulator, 1 per peer and 4 in all came closest to the bound).
  int max_in_flight_per_peer = 2;
  int max_in_flight = 8;
  int endgame_max_copies = 3;  // 1 turns endgame off.
  // In endgame, a piece gets another copy once its newest request has been
  // out this many times the typical time of a piece (smoothed over every
  // verified piece), so that only stragglers are duplicated.
  double endgame_after = 2.0;

  // Throughput floor in bytes/s; 0 turns it off. A peer at the floor must be
  // able to deliver the largest piece within `rate_window`.
  double min_peer_rate = 256 * 1024;
  absl::Duration rate_window = absl::Seconds(20);
  absl::Duration grace = absl::Seconds(10);
  int max_consecutive_failures = 3;
  int max_refusals = 3;

  // Deadlines.
  double assumed_rate = 4 * 1024 * 1024;  // bytes/s before a peer is measured
  double timeout_factor = 4;
  absl::Duration min_timeout = absl::Seconds(5);
  absl::Duration max_timeout = absl::Seconds(120);

  absl::Duration busy_backoff = absl::Milliseconds(200);
  absl::Duration failure_memory = absl::Seconds(30);

  // Origin.
  int max_origin_in_flight = 2;
  absl::Duration origin_retry = absl::Seconds(5);
};

// Counters for status and metrics.
struct Progress {
  uint32_t num_pieces = 0;
  uint32_t pieces_verified = 0;
  std::array<uint64_t, kNumLocalities> bytes_from_peers = {};
  uint64_t bytes_from_origin = 0;
  uint32_t requests_in_flight = 0;
  uint32_t peers = 0;
  uint32_t banned = 0;
  uint32_t proof_failures = 0;
  bool endgame = false;
};

// The scheduler of one release on one agent. Thread-compatible: the engine
// serializes calls (one mutex or one thread).
class Scheduler {
 public:
  // `piece_lengths[i]` is the length of release piece i (from the signed
  // manifest); `have` the pieces already verified (same count). `rng` must
  // outlive the scheduler. INVALID_ARGUMENT for a config that cannot work or
  // sizes that disagree.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(
      const SchedulerConfig& config, std::vector<uint64_t> piece_lengths,
      Bitfield have, absl::BitGenRef rng);

  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // --- Peers. ---

  // A newly connected peer, holding nothing until its bitfield arrives.
  // FAILED_PRECONDITION if it is banned; ALREADY_EXISTS if already added.
  absl::Status AddPeer(PeerKey peer, Locality locality);
  // Forgets the peer and frees its requests (the engine cancels them). A
  // ban outlives removal. Unknown peers are ignored.
  void RemovePeer(PeerKey peer);
  // The peer's claims in wire form, replacing earlier ones. NOT_FOUND for
  // an unknown peer; INVALID_ARGUMENT (and the peer is dropped as
  // misbehaving) for a wrong length or spare bits set.
  absl::Status OnBitfield(PeerKey peer, absl::string_view bitfield);
  // One more claim. NOT_FOUND for an unknown peer; INVALID_ARGUMENT (and
  // the peer is dropped as misbehaving) for a piece out of range.
  absl::Status OnHave(PeerKey peer, ReleasePieceIndex piece);

  // --- Requests. ---

  // New requests to send now. Each is in flight until verified, failed,
  // cancelled or its peer removed.
  std::vector<Assignment> NextRequests(absl::Time now);
  // `piece` from `peer` proved good. Returns the other copies to cancel.
  // The piece counts even if it was not requested or the peer is gone.
  std::vector<Cancel> OnPieceVerified(PeerKey peer, ReleasePieceIndex piece,
                                      uint64_t bytes, absl::Time now);
  // A request failed. kBadProof bans the peer even if the request is not
  // known; other reasons about requests no longer in flight are ignored.
  PeerVerdict OnPieceFailed(PeerKey peer, ReleasePieceIndex piece,
                            FailureReason reason, absl::Time now);
  // Requests past their deadline, each reported once: cancel them and call
  // OnPieceFailed(kTimeout).
  std::vector<Cancel> Expired(absl::Time now);
  // Peers to disconnect, each reported once; their requests are already
  // freed. Call RemovePeer after closing them.
  std::vector<Drop> PeersToDrop(absl::Time now);

  // --- Origin. ---

  // Up to `limit` pieces to ask the tracker to lease; each waits for
  // OnOriginLease (unanswered ones are offered again after origin_retry).
  std::vector<OriginWant> PiecesWantingOrigin(absl::Time now, int limit);
  // The tracker's answer for a piece PiecesWantingOrigin offered. After a
  // grant, fetch the piece and report OnPieceFromOrigin / OnOriginFailed.
  // INVALID_ARGUMENT for a piece out of range; FAILED_PRECONDITION if the
  // piece was not awaiting an answer (then do not fetch it).
  absl::Status OnOriginLease(ReleasePieceIndex piece, bool granted,
                             absl::Time now);
  // A verified piece from the origin. Returns peer requests to cancel.
  std::vector<Cancel> OnPieceFromOrigin(ReleasePieceIndex piece, uint64_t bytes,
                                        absl::Time now);
  void OnOriginFailed(ReleasePieceIndex piece, absl::Time now);

  // --- State. ---

  const Bitfield& have() const { return have_; }
  bool complete() const { return verified_ == have_.num_pieces(); }
  bool IsBanned(PeerKey peer) const { return banned_.count(peer) > 0; }
  // Usable peers that claim `piece`. CHECK-fails when out of range.
  uint32_t Availability(ReleasePieceIndex piece) const;
  Progress progress() const;

 private:
  struct Peer {
    Peer(Locality l, uint32_t num_pieces) : locality(l), claims(num_pieces) {}

    Locality locality;
    Bitfield claims;
    uint32_t claim_count = 0;
    int in_flight = 0;
    // Start of the current stretch with requests in flight.
    absl::Time busy_since = absl::InfiniteFuture();
    absl::Time backoff_until = absl::InfinitePast();
    int consecutive_failures = 0;
    int refusals = 0;
    int busy_streak = 0;  // busy answers since its last verified piece
    uint64_t bytes_verified = 0;
    // Smoothed seconds per byte of its requests (sharing included); 0 until
    // the first verified piece.
    double seconds_per_byte = 0;
    // Verified bytes within the last rate_window.
    std::deque<std::pair<absl::Time, uint64_t>> delivered;
    // Set once the peer is to be dropped; its claims then leave
    // availability_.
    std::optional<DropReason> drop;
    bool drop_reported = false;
    // Had a free request slot when NextRequests last looked.
    bool open = false;
  };
  struct Request {
    PeerKey peer;
    absl::Time started;
    absl::Time deadline;
    bool expired = false;  // reported by Expired()
  };
  // A peer not to ask for one piece until `until`.
  struct Avoid {
    PeerKey peer;
    absl::Time until;
    bool holder_failed;  // counts towards the origin fallback
  };
  enum class OriginState { kAsked, kFetching, kWaiting };
  struct OriginEntry {
    OriginState state;
    absl::Time since;  // kAsked/kFetching: when; kWaiting: until when
  };
  // A peer with free request slots, while NextRequests runs.
  struct Open {
    PeerKey key;
    Peer* peer;
  };

  Scheduler(const SchedulerConfig& config, std::vector<uint64_t> lengths,
            Bitfield have, absl::BitGenRef rng);

  // Missing pieces, not in flight nor coming from the origin, that an open
  // peer at the piece's nearest tier claims (a piece some rack peer holds
  // waits for one; it is not fetched from farther), with that tier.
  std::vector<std::pair<int, uint32_t>> Wanted(const std::vector<Open>& open,
                                               absl::Time now) const;
  // The locality of the peer, plus kNumLocalities if its last request
  // failed.
  static int TierOf(const Peer& peer);
  // 0 for peers about as fast per byte as the typical one (or unmeasured),
  // 1 for slow, 2 for very slow ones.
  int SpeedClass(const Peer& peer) const;
  std::vector<Open> OpenPeers(absl::Time now);
  void PickRarest(absl::Time now, std::vector<Open>& open,
                  std::vector<Assignment>& out);
  void PickEndgame(absl::Time now, std::vector<Open>& open,
                   std::vector<Assignment>& out);
  // Index into `open` of the best holder of `piece` at most `farthest` away
  // (a Locality value) and not among `requested` (the piece's requests in
  // flight, for endgame; may be null), or -1.
  int ChooseHolder(uint32_t piece, absl::Time now,
                   const std::vector<Open>& open, int farthest,
                   const std::vector<Request>* requested);
  Assignment Assign(const Open& open, uint32_t piece, absl::Time now,
                    bool endgame);
  bool Avoided(uint32_t piece, PeerKey peer, absl::Time now) const;
  bool AllHoldersFailed(uint32_t piece, absl::Time now) const;
  void AddAvoid(uint32_t piece, PeerKey peer, absl::Time until, bool failed);
  // Removes the request of `piece` from `peer`; false if there was none.
  bool EndRequest(PeerKey peer, uint32_t piece);
  void EndAllRequests(PeerKey peer);
  void ReleaseSlot(PeerKey peer);
  // Records `piece` as held and ends its requests; returns those not from
  // `from` as cancels.
  std::vector<Cancel> MarkHave(uint32_t piece, std::optional<PeerKey> from);
  // Adds `delta` to the counts of holders of `piece`.
  void Claim(const Peer& peer, uint32_t piece, int delta);
  // Claim() for every piece the peer claims.
  void Count(const Peer& peer, int delta);
  bool OriginBusyFor(uint32_t piece, absl::Time now) const;
  void MarkDrop(PeerKey key, Peer& peer, DropReason reason);
  PeerVerdict CountFailure(PeerKey key, Peer& peer, uint32_t piece,
                           FailureReason reason, absl::Time now);
  void CheckThroughput(Peer& peer, PeerKey key, absl::Time now);
  int OriginBusy(absl::Time now) const;
  bool InEndgame(absl::Time now) const;

  const SchedulerConfig config_;
  const std::vector<uint64_t> lengths_;
  absl::BitGenRef rng_;
  Bitfield have_;
  uint32_t verified_ = 0;
  std::vector<uint32_t> availability_;  // usable holders, by piece
  std::vector<uint32_t> in_rack_;       // usable holders in this rack
  Bitfield in_flight_;  // pieces with at least one request in flight
  double typical_seconds_per_byte_;
  std::map<PeerKey, Peer> peers_;
  std::set<PeerKey> banned_;
  std::vector<PeerKey> pending_drops_;  // marked, not yet reported
  std::map<uint32_t, std::vector<Request>> requests_;  // by piece
  std::map<uint32_t, std::vector<Avoid>> avoid_;       // by piece
  std::map<uint32_t, OriginEntry> origin_;             // by piece
  int total_in_flight_ = 0;
  bool endgame_ = false;
  Progress stats_;
};

}  // namespace shoal::agent
