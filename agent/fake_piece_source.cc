#include "agent/fake_piece_source.h"

#include <glog/logging.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::agent {

class FakePieceSource::Handle final : public HaveSubscription {
 public:
  Handle(FakePieceSource& source, std::string release_id,
         HaveListener* listener)
      : source_(source),
        release_id_(std::move(release_id)),
        listener_(listener) {}
  ~Handle() override { source_.Unsubscribe(release_id_, listener_); }

 private:
  FakePieceSource& source_;
  const std::string release_id_;
  HaveListener* const listener_;
};

FakePieceSource::~FakePieceSource() {
  absl::MutexLock lock(&mu_);
  CHECK_EQ(subscriptions_, 0) << "subscriptions outlive the source";
}

void FakePieceSource::AddRelease(const std::string& release_id,
                                 uint32_t num_pieces) {
  absl::MutexLock lock(&mu_);
  CHECK(releases_.try_emplace(release_id, num_pieces).second) << release_id;
}

void FakePieceSource::AddPiece(const std::string& release_id,
                               ReleasePieceIndex piece, std::string data,
                               MerkleProof proof) {
  absl::MutexLock lock(&mu_);
  auto it = releases_.find(release_id);
  CHECK(it != releases_.end()) << release_id;
  Release& release = it->second;
  release.bitfield.Set(piece);
  release.pieces[piece.value()] = {std::move(data), std::move(proof)};
  for (HaveListener* listener : release.listeners) listener->OnHave(piece);
}

void FakePieceSource::AddMember(const std::string& release_id,
                                v1::PeerAddress member) {
  absl::MutexLock lock(&mu_);
  auto it = releases_.find(release_id);
  CHECK(it != releases_.end()) << release_id;
  RecordMember(it->second, member);
}

std::vector<v1::PeerAddress> FakePieceSource::Members(
    const std::string& release_id) const {
  absl::MutexLock lock(&mu_);
  auto it = releases_.find(release_id);
  return it == releases_.end() ? std::vector<v1::PeerAddress>()
                               : it->second.members;
}

int FakePieceSource::subscriptions() const {
  absl::MutexLock lock(&mu_);
  return subscriptions_;
}

absl::StatusOr<ServedPiece> FakePieceSource::ReadPiece(
    const std::string& release_id, ReleasePieceIndex piece) {
  absl::MutexLock lock(&mu_);
  auto it = releases_.find(release_id);
  if (it == releases_.end()) {
    return absl::NotFoundError(absl::StrCat("no release ", release_id));
  }
  auto held = it->second.pieces.find(piece.value());
  if (held == it->second.pieces.end()) {
    return absl::NotFoundError(
        absl::StrCat("piece ", piece.value(), " of ", release_id, " not held"));
  }
  return ServedPiece{PieceBuffer::CopyOf(held->second.first),
                     held->second.second};
}

absl::StatusOr<Subscription> FakePieceSource::Subscribe(
    const std::string& release_id, HaveListener& listener) {
  absl::MutexLock lock(&mu_);
  auto it = releases_.find(release_id);
  if (it == releases_.end()) {
    return absl::NotFoundError(absl::StrCat("no release ", release_id));
  }
  it->second.listeners.insert(&listener);
  ++subscriptions_;
  return Subscription{it->second.bitfield,
                      std::make_unique<Handle>(*this, release_id, &listener)};
}

void FakePieceSource::Unsubscribe(const std::string& release_id,
                                  HaveListener* listener) {
  absl::MutexLock lock(&mu_);
  releases_.at(release_id).listeners.erase(listener);
  --subscriptions_;
}

std::vector<v1::PeerAddress> FakePieceSource::ExchangePeers(
    const std::string& release_id, const v1::PeerAddress& asker, size_t limit) {
  absl::MutexLock lock(&mu_);
  auto it = releases_.find(release_id);
  if (it == releases_.end()) return {};
  std::vector<v1::PeerAddress> peers;
  for (const v1::PeerAddress& member : it->second.members) {
    if (member.peer_id() != asker.peer_id()) peers.push_back(member);
  }
  std::stable_partition(peers.begin(), peers.end(),
                        [&](const v1::PeerAddress& p) {
                          return p.datacenter() == asker.datacenter();
                        });
  if (peers.size() > limit) peers.resize(limit);
  RecordMember(it->second, asker);
  return peers;
}

void FakePieceSource::RecordMember(Release& release,
                                   const v1::PeerAddress& member) {
  auto same = [&](const v1::PeerAddress& p) {
    return p.peer_id() == member.peer_id();
  };
  auto it = std::find_if(release.members.begin(), release.members.end(), same);
  if (it == release.members.end()) {
    release.members.push_back(member);
  } else {
    *it = member;
  }
}

}  // namespace shoal::agent
