// The download engine in-process: a real ReleaseStore, a synchronous fake
// transport standing in for the network, honest and hostile peers.

#include "agent/download.h"

#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/ed25519.h"
#include "common/release_pieces.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

constexpr uint64_t kPiece = 64 * 1024;

// A signed release with every piece and proof, made in memory.
struct TestRelease {
  std::optional<Manifest> manifest;
  std::vector<std::string> pieces;   // by release piece
  std::vector<MerkleProof> proofs;   // by release piece
};

TestRelease MakeRelease() {
  TestRelease r;
  v1::ManifestBody body;
  body.set_format(kManifestFormat);
  body.set_name("app");
  body.set_version("1");
  body.set_sequence(1);
  body.set_created_unix_ms(1);
  body.set_expires_unix_ms(int64_t{1} << 50);
  body.set_piece_size(kPiece);
  uint32_t seed = 7;
  for (auto [path, size] : std::vector<std::pair<std::string, uint64_t>>{
           {"a.bin", 9 * kPiece + 1000}, {"b.bin", 5 * kPiece}}) {
    std::string data(size, '\0');
    for (char& c : data) c = static_cast<char>(seed = seed * 1103515245 + 12345);
    FileGeometry g = *FileGeometry::Create(size, kPiece);
    std::vector<Digest> layer;
    for (uint32_t i = 0; i < g.num_pieces(); ++i) {
      std::string piece = data.substr(g.piece_offset(PieceIndex(i)), g.piece_length(PieceIndex(i)));
      layer.push_back(*PieceHash(g, PieceIndex(i), piece));
      r.pieces.push_back(piece);
    }
    PieceTree tree = *PieceTree::Create(g, layer);
    for (uint32_t i = 0; i < g.num_pieces(); ++i) r.proofs.push_back(*tree.Proof(PieceIndex(i)));
    v1::FileEntry* f = body.add_files();
    f->set_path(path);
    f->set_size(size);
    f->set_mode(0644);
    f->set_pieces_root(std::string(DigestBytes(tree.root())));
  }
  PrivateKey key = *PrivateKey::Generate();
  r.manifest.emplace(*Manifest::ParseUnverified(SignManifest(body, {key})->SerializeAsString()));
  return r;
}

enum class Behaviour { kHonest, kCorrupt, kRefuses };

// Answers at once, on the caller's thread, as the remote named in Connect
// would: honest, flipping a bit in every piece, or claiming everything and
// then answering NOT_FOUND.
class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(const TestRelease& release) : release_(release) {}

  void Add(const std::string& peer_id, Behaviour behaviour) { behaviour_[peer_id] = behaviour; }
  int fetches(const std::string& peer_id) {
    absl::MutexLock lock(&mu_);
    return fetches_[peer_id];
  }
  int connects(const std::string& peer_id) {
    absl::MutexLock lock(&mu_);
    return connects_[peer_id];
  }

  std::unique_ptr<PeerSession> Connect(const v1::PeerAddress& remote, const std::string&,
                                       const v1::PeerAddress&, SessionListener& listener) override {
    {
      absl::MutexLock lock(&mu_);
      ++connects_[remote.peer_id()];
    }
    Bitfield all(release_.pieces.size());
    for (uint32_t i = 0; i < release_.pieces.size(); ++i) all.Set(ReleasePieceIndex(i));
    listener.OnBitfield(all.bytes());
    return std::make_unique<Session>(*this, remote.peer_id(), behaviour_[remote.peer_id()]);
  }

 private:
  class Session final : public PeerSession {
   public:
    Session(FakeTransport& t, std::string id, Behaviour b) : t_(t), id_(std::move(id)), b_(b) {}
    void FetchPiece(ReleasePieceIndex piece, uint64_t, absl::Duration, PieceCallback done) override {
      {
        absl::MutexLock lock(&t_.mu_);
        ++t_.fetches_[id_];
      }
      if (b_ == Behaviour::kRefuses) {
        done(absl::NotFoundError("not held"));
        return;
      }
      ReceivedPiece r{PieceBuffer::CopyOf(t_.release_.pieces[piece.value()]), t_.release_.proofs[piece.value()]};
      if (b_ == Behaviour::kCorrupt) r.data.data()[r.data.size() / 2] ^= 0x04;
      done(std::move(r));
    }

   private:
    FakeTransport& t_;
    const std::string id_;
    const Behaviour b_;
  };

  const TestRelease& release_;
  absl::flat_hash_map<std::string, Behaviour> behaviour_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> fetches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> connects_ ABSL_GUARDED_BY(mu_);
};

v1::PeerAddress Peer(const std::string& id) {
  v1::PeerAddress p;
  p.set_peer_id(id);
  p.set_address("127.0.0.1:1");
  p.set_datacenter("dc1");
  p.set_rack("r1");
  return p;
}

class DownloadTest : public ::testing::Test {
 protected:
  DownloadTest() : release_(MakeRelease()), transport_(release_) {}

  std::unique_ptr<ReleaseDownload> Start(std::unique_ptr<ReleaseStore> store) {
    DownloadContext context;
    context.transport = &transport_;
    context.clock = &clock_;
    context.metrics = &metrics_;
    context.self = Peer("self");
    DownloadOptions options;
    options.tick = absl::Milliseconds(5);
    return std::make_unique<ReleaseDownload>(
        context, options, std::move(store), nullptr, [](ReleasePieceIndex) {});
  }

  std::unique_ptr<ReleaseStore> NewStore() {
    auto store = ReleaseStore::Create(dir_ + "/release", *release_.manifest, {false});
    EXPECT_TRUE(store.ok()) << store.status();
    return *std::move(store);
  }

  TestRelease release_;
  FakeTransport transport_;
  RealClock clock_;
  AgentMetrics metrics_{std::make_shared<prometheus::Registry>()};
  std::string dir_ = MakeTestDir("download");
};

TEST_F(DownloadTest, CompletesFromHonestPeerAndBansOneSendingBadPieces) {
  transport_.Add("honest", Behaviour::kHonest);
  transport_.Add("corrupt", Behaviour::kCorrupt);
  auto download = Start(NewStore());
  download->AddPeers({Peer("corrupt"), Peer("honest")});
  ASSERT_TRUE(download->WaitForCompletion(absl::Seconds(30)));
  ReleaseStore& store = download->store();
  ASSERT_TRUE(store.complete());
  for (uint32_t i = 0; i < release_.pieces.size(); ++i) {
    EXPECT_EQ(store.Read(ReleasePieceIndex(i))->data.view(), release_.pieces[i]) << "piece " << i;
  }
  v1::ReleaseStatus status = download->Status();
  EXPECT_EQ(status.state(), v1::RELEASE_STATE_SEEDING);
  EXPECT_GE(status.proof_failures(), 1u);
  EXPECT_EQ(status.peers_banned(), 1u);
  // Banned at its first bad piece, never asked again.
  EXPECT_EQ(transport_.fetches("corrupt"), static_cast<int>(status.proof_failures()));
  EXPECT_EQ(transport_.connects("corrupt"), 1);
}

TEST_F(DownloadTest, PeerThatClaimsPiecesItRefusesIsDroppedForHonestOnes) {
  transport_.Add("liar", Behaviour::kRefuses);
  transport_.Add("honest", Behaviour::kHonest);
  auto download = Start(NewStore());
  download->AddPeers({Peer("liar"), Peer("honest")});
  ASSERT_TRUE(download->WaitForCompletion(absl::Seconds(30)));
  EXPECT_TRUE(download->store().complete());
  EXPECT_LT(transport_.fetches("liar"), static_cast<int>(release_.pieces.size()));
}

TEST_F(DownloadTest, ResumesWithoutFetchingWhatTheStoreRecorded) {
  {
    std::unique_ptr<ReleaseStore> store = NewStore();
    for (uint32_t i = 0; i < 6; ++i) {
      ASSERT_TRUE(store->Put(ReleasePieceIndex(i), release_.pieces[i], release_.proofs[i]).ok());
    }
    ASSERT_TRUE(store->Commit().ok());
  }
  auto reopened = ReleaseStore::Open(dir_ + "/release", *release_.manifest, {false});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  transport_.Add("honest", Behaviour::kHonest);
  auto download = Start(*std::move(reopened));
  download->AddPeers({Peer("honest")});
  ASSERT_TRUE(download->WaitForCompletion(absl::Seconds(30)));
  EXPECT_TRUE(download->store().complete());
  EXPECT_EQ(transport_.fetches("honest"), static_cast<int>(release_.pieces.size()) - 6);
}

}  // namespace
}  // namespace shoal::agent
