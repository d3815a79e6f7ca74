#include "publisher/inspect.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/hex.h"
#include "nlohmann/json.hpp"

namespace shoal::publisher {
namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

}  // namespace

std::string InspectText(const Manifest& manifest, bool verified) {
  const v1::ManifestBody& body = manifest.body();
  std::string out = absl::StrFormat(
      "release     %s\nrelease id  %s\nsequence    %d\ncreated     %s\n"
      "expires     %s\npiece size  %d\ntotal size  %d bytes in %d file(s)\n"
      "signatures  %s\n",
      manifest.display_name(), manifest.release_id(), body.sequence(),
      Rfc3339(manifest.created()), Rfc3339(manifest.expires()),
      body.piece_size(), manifest.total_size(), body.files_size(),
      verified ? "verified against the trust policy"
               : "NOT checked (pass --trust to check them)");
  for (const v1::Signature& sig : manifest.signed_manifest().signatures()) {
    absl::StrAppend(&out, "  signed by ", sig.key_id(), "\n");
  }
  absl::StrAppend(&out, "files:\n");
  for (const v1::FileEntry& f : body.files()) {
    absl::StrAppendFormat(&out, "  %04o %14d  %-64s  %s\n", f.mode(), f.size(),
                          f.pieces_root().empty() ? "(empty)" : HexEncode(f.pieces_root()),
                          f.path());
  }
  return out;
}

std::string InspectJson(const Manifest& manifest, bool verified) {
  const v1::ManifestBody& body = manifest.body();
  nlohmann::json j;
  j["name"] = body.name();
  j["version"] = body.version();
  j["sequence"] = body.sequence();
  j["release_id"] = manifest.release_id();
  j["piece_size"] = body.piece_size();
  j["created"] = Rfc3339(manifest.created());
  j["expires"] = Rfc3339(manifest.expires());
  j["total_size"] = manifest.total_size();
  j["verified"] = verified;
  j["signatures"] = nlohmann::json::array();
  for (const v1::Signature& sig : manifest.signed_manifest().signatures()) {
    j["signatures"].push_back({{"key_id", sig.key_id()}});
  }
  j["files"] = nlohmann::json::array();
  for (const v1::FileEntry& f : body.files()) {
    j["files"].push_back({{"path", f.path()},
                          {"size", f.size()},
                          {"mode", f.mode()},
                          {"pieces_root", HexEncode(f.pieces_root())}});
  }
  return j.dump();
}

}  // namespace shoal::publisher
