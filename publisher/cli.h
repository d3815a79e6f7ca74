#pragma once

// The subcommands of shoal-publish, with flags already parsed. Each returns
// the process exit code and writes errors to stderr.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace shoal::publisher {

struct CliFlags {
  std::string out;
  std::vector<std::string> keys;
  std::string name;
  std::string version;
  std::string origin;
  uint64_t piece_size = 0;
  absl::Duration expires_in;
  std::optional<uint64_t> sequence;
  uint32_t threshold = 1;
  std::string trust;
  bool json = false;
  std::string listen;
  std::string metrics_listen;
  std::string ready_file;
  int threads = 0;
  bool durable = false;
  std::vector<std::string> trackers;
  std::vector<std::string> origin_urls;
  std::string tls_cert, tls_key, tls_ca;
  bool insecure = false;
};

int RunKeygen(const CliFlags& flags);
int RunTrust(const CliFlags& flags, const std::vector<std::string>& pubs);
int RunSign(const CliFlags& flags, const std::vector<std::string>& args);
int RunCreate(const CliFlags& flags, const std::vector<std::string>& inputs);
int RunVerify(const CliFlags& flags, const std::vector<std::string>& args);
int RunInspect(const CliFlags& flags, const std::vector<std::string>& args);
int RunServe(const CliFlags& flags);
int RunRegister(const CliFlags& flags, const std::vector<std::string>& args);

}  // namespace shoal::publisher
