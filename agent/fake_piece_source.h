#pragma once

// An in-memory PieceSource for tests and benchmarks: releases, pieces and
// swarm members are whatever the test puts in.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "agent/piece_source.h"

namespace shoal::agent {

// Thread-safe. OnHave runs on the thread that calls AddPiece, under the
// source's lock (which is how a subscription's end waits it out), so
// listeners must not call back into the source.
class FakePieceSource final : public PieceSource {
 public:
  FakePieceSource() = default;
  ~FakePieceSource() override;  // CHECK-fails while subscriptions are open.

  // A release of `num_pieces` pieces, none held. CHECK-fails if it exists.
  void AddRelease(const std::string& release_id, uint32_t num_pieces);

  // Holds `piece` from now on and tells the subscribers. CHECK-fails for an
  // unknown release or a piece out of range.
  void AddPiece(const std::string& release_id, ReleasePieceIndex piece,
                std::string data, MerkleProof proof);

  // A member of the release's swarm, for ExchangePeers.
  void AddMember(const std::string& release_id, v1::PeerAddress member);

  // Members recorded so far (added or asking), in order of arrival.
  std::vector<v1::PeerAddress> Members(const std::string& release_id) const;

  // Subscriptions open now.
  int subscriptions() const;

  absl::StatusOr<ServedPiece> ReadPiece(const std::string& release_id,
                                        ReleasePieceIndex piece) override;
  absl::StatusOr<Subscription> Subscribe(const std::string& release_id,
                                         HaveListener& listener) override;
  std::vector<v1::PeerAddress> ExchangePeers(const std::string& release_id,
                                             const v1::PeerAddress& asker,
                                             size_t limit) override;

 private:
  class Handle;
  struct Release {
    explicit Release(uint32_t num_pieces) : bitfield(num_pieces) {}
    Bitfield bitfield;
    absl::flat_hash_map<uint32_t, std::pair<std::string, MerkleProof>> pieces;
    std::vector<v1::PeerAddress> members;
    absl::flat_hash_set<HaveListener*> listeners;
  };

  void Unsubscribe(const std::string& release_id, HaveListener* listener);
  void RecordMember(Release& release, const v1::PeerAddress& member)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Release> releases_ ABSL_GUARDED_BY(mu_);
  int subscriptions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::agent
