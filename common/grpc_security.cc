#include "common/grpc_security.h"

#include <arpa/inet.h>
#include <glog/logging.h>
#include <grpc/grpc_security_constants.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace shoal {
namespace {

// PEM files are small; anything larger is not what the flag should name.
constexpr uint64_t kMaxPemBytes = 1 << 20;
// Server keepalive: our clients ping every kKeepaliveTimeMs, which keeps this
// timer from firing, so the server only pings connections gone silent.
constexpr int kServerKeepaliveTimeMs = 60 * 1000;
constexpr char kFlagsUsage[] =
    "pass --tls_cert, --tls_key and --tls_ca, or --insecure for a "
    "loopback-only demo";

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct StoreFree {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* ctx) const { X509_STORE_CTX_free(ctx); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

BioPtr MemoryBio(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  CHECK(bio != nullptr) << "out of memory";
  return bio;
}

// Reads the file a TLS flag names; the error keeps its code and says which
// flag pointed at the file.
absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag,
                                         const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path, kMaxPemBytes);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat(flag, ": ", text.status().message()));
  }
  return text;
}

// Every certificate in `pem`, in order.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view flag,
                                                       const std::string& path,
                                                       const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  std::vector<X509Ptr> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  // Running out of input ends the loop with "no start line"; anything else
  // is a damaged certificate.
  const unsigned long error = ERR_peek_last_error();
  const bool clean_end = ERR_GET_LIB(error) == ERR_LIB_PEM &&
                         ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  if (certs.empty() || !clean_end) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": ", path,
        certs.empty() ? " holds no PEM certificate (\"-----BEGIN CERTIFICATE"
                        "-----\")"
                      : " holds a malformed PEM certificate"));
  }
  return certs;
}

// Called by OpenSSL for an encrypted key; refusing keeps it from prompting
// on the terminal.
int RefusePassphrase(char*, int, int, void*) { return -1; }

absl::StatusOr<PkeyPtr> ParsePrivateKey(const std::string& path,
                                        const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  PkeyPtr key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, &RefusePassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_key: ", path,
        " holds no unencrypted PEM private key (encrypted keys are not "
        "supported)"));
  }
  return key;
}

// Checks that `key` belongs to the leaf of `chain` and that the chain
// verifies against `cas` now.
absl::Status CheckCertificate(const TlsFlags& flags,
                              const std::vector<X509Ptr>& chain, EVP_PKEY* key,
                              const std::vector<X509Ptr>& cas) {
  if (X509_check_private_key(chain[0].get(), key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key ", flags.key,
                     " is not the private key of the certificate in "
                     "--tls_cert ",
                     flags.cert));
  }
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  CHECK(store != nullptr && untrusted != nullptr && ctx != nullptr)
      << "out of memory";
  for (const X509Ptr& ca : cas) X509_STORE_add_cert(store.get(), ca.get());
  for (size_t i = 1; i < chain.size(); ++i) {
    sk_X509_push(untrusted.get(), chain[i].get());
  }
  CHECK_EQ(X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(),
                               untrusted.get()),
           1);
  const bool verified = X509_verify_cert(ctx.get()) == 1;
  ERR_clear_error();
  if (!verified) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_cert ", flags.cert, " does not verify against --tls_ca ",
        flags.ca, ": ",
        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))));
  }
  return absl::OkStatus();
}

bool IsPort(absl::string_view text) {
  return !text.empty() && text.size() <= 5 &&
         std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
}

// The host part of "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6
// address; nullopt when malformed.
std::optional<std::string> HostOf(absl::string_view host_port);

}  // namespace

std::string BoundAddress(absl::string_view listen_address, int port) {
  std::string host = HostOf(listen_address).value_or(std::string(listen_address));
  if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
  return absl::StrCat(host, ":", port);
}

namespace {

std::optional<std::string> HostOf(absl::string_view host_port) {
  if (absl::ConsumePrefix(&host_port, "[")) {
    const size_t close = host_port.find(']');
    if (close == absl::string_view::npos) return std::nullopt;
    absl::string_view rest = host_port.substr(close + 1);
    if (!rest.empty() && !(absl::ConsumePrefix(&rest, ":") && IsPort(rest))) {
      return std::nullopt;
    }
    return std::string(host_port.substr(0, close));
  }
  const size_t colons = std::count(host_port.begin(), host_port.end(), ':');
  if (colons != 1) return std::string(host_port);  // No port, or bare IPv6.
  const size_t colon = host_port.find(':');
  if (!IsPort(host_port.substr(colon + 1))) return std::nullopt;
  return std::string(host_port.substr(0, colon));
}

bool IsLoopbackHost(const std::string& host) {
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) ||
           (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

// FAILED_PRECONDITION unless plaintext gRPC on `address` stays on this host.
absl::Status CheckInsecureAllowed(absl::string_view what,
                                  const std::string& address) {
  if (IsLoopbackAddress(address) || IsUnixSocketAddress(address)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing plaintext gRPC ", what, " \"", address,
      "\": --insecure is only for loopback addresses (127.0.0.1, [::1], "
      "localhost) or unix: sockets; pass --tls_cert, --tls_key and --tls_ca "
      "to use other addresses"));
}

}  // namespace

absl::StatusOr<GrpcSecurity> GrpcSecurity::Create(const TlsFlags& flags) {
  const bool any_tls =
      !flags.cert.empty() || !flags.key.empty() || !flags.ca.empty();
  const bool all_tls =
      !flags.cert.empty() && !flags.key.empty() && !flags.ca.empty();
  if (flags.insecure && any_tls) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--insecure cannot be combined with --tls_cert, --tls_key or "
        "--tls_ca; ",
        kFlagsUsage));
  }
  GrpcSecurity security;
  if (flags.insecure) {
    security.insecure_ = true;
    return security;
  }
  if (!all_tls) {
    return absl::InvalidArgumentError(absl::StrCat(
        any_tls ? "incomplete TLS flags: " : "no TLS flags: ", kFlagsUsage));
  }
  ASSIGN_OR_RETURN(security.cert_chain_,
                   ReadFlagFile("--tls_cert", flags.cert));
  ASSIGN_OR_RETURN(security.private_key_, ReadFlagFile("--tls_key", flags.key));
  ASSIGN_OR_RETURN(security.ca_certs_, ReadFlagFile("--tls_ca", flags.ca));
  ASSIGN_OR_RETURN(
      std::vector<X509Ptr> chain,
      ParseCertificates("--tls_cert", flags.cert, security.cert_chain_));
  ASSIGN_OR_RETURN(PkeyPtr key,
                   ParsePrivateKey(flags.key, security.private_key_));
  ASSIGN_OR_RETURN(std::vector<X509Ptr> cas,
                   ParseCertificates("--tls_ca", flags.ca, security.ca_certs_));
  RETURN_IF_ERROR(CheckCertificate(flags, chain, key.get(), cas));
  return security;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>>
GrpcSecurity::ServerCredentials(const std::string& listen_address) const {
  if (insecure_) {
    RETURN_IF_ERROR(CheckInsecureAllowed("server on", listen_address));
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = ca_certs_;
  options.pem_key_cert_pairs.push_back({private_key_, cert_chain_});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> GrpcSecurity::MakeChannel(
    const std::string& target) const {
  if (target.empty()) {
    return absl::InvalidArgumentError("empty gRPC target; expected HOST:PORT");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (insecure_) {
    RETURN_IF_ERROR(CheckInsecureAllowed("channel to", target));
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ca_certs_;
    options.pem_private_key = private_key_;
    options.pem_cert_chain = cert_chain_;
    credentials = grpc::SslCredentials(options);
  }
  CHECK(credentials != nullptr)
      << "gRPC refused credentials validated at Create";
  return grpc::CreateCustomChannel(target, credentials, ChannelArgs());
}

grpc::ChannelArguments GrpcSecurity::ChannelArgs() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC otherwise stops sending keepalive pings after two on a connection
  // with no data, leaving an idle dead peer undetected.
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
  return args;
}

void GrpcSecurity::ConfigureServer(grpc::ServerBuilder& builder) const {
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             kMaxConcurrentStreams);
  // Without PERMIT_WITHOUT_CALLS on the server too, gRPC allows a ping on a
  // connection with no calls only every two hours, and answers our clients'
  // idle keepalive pings with GOAWAY "too_many_pings".
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      kMinClientPingIntervalMs);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             kServerKeepaliveTimeMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             kKeepaliveTimeoutMs);
}

std::string CallerIdentity(const grpc::AuthContext& auth) {
  if (!auth.IsPeerAuthenticated()) return "";
  const std::vector<grpc::string_ref> type =
      auth.FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  if (type.empty() || (type[0] != GRPC_SSL_TRANSPORT_SECURITY_TYPE &&
                       type[0] != GRPC_TLS_TRANSPORT_SECURITY_TYPE)) {
    return "";
  }
  // The SAN property lists every subject alternative name in certificate
  // order; the typed properties say which of them are DNS names and URIs.
  std::set<grpc::string_ref> dns_or_uri;
  for (const char* property :
       {GRPC_PEER_DNS_PROPERTY_NAME, GRPC_PEER_URI_PROPERTY_NAME}) {
    for (const grpc::string_ref& value : auth.FindPropertyValues(property)) {
      dns_or_uri.insert(value);
    }
  }
  for (const grpc::string_ref& san :
       auth.FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME)) {
    if (dns_or_uri.count(san) > 0) return std::string(san.data(), san.size());
  }
  const std::vector<grpc::string_ref> cn =
      auth.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  return cn.empty() ? "" : std::string(cn[0].data(), cn[0].size());
}

bool IsLoopbackAddress(absl::string_view host_port) {
  std::optional<std::string> host = HostOf(host_port);
  return host.has_value() && IsLoopbackHost(*host);
}

bool IsUnixSocketAddress(absl::string_view address) {
  return (absl::StartsWith(address, "unix:") && address.size() > 5) ||
         (absl::StartsWith(address, "unix-abstract:") && address.size() > 14);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  // Both enums follow google.rpc.Code; anything outside it is UNKNOWN.
  const grpc::StatusCode grpc_code =
      code > 0 && code <= grpc::StatusCode::UNAUTHENTICATED
          ? static_cast<grpc::StatusCode>(code)
          : grpc::StatusCode::UNKNOWN;
  return grpc::Status(grpc_code, std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const int code = static_cast<int>(status.error_code());
  const absl::StatusCode absl_code =
      code > 0 && code <= static_cast<int>(absl::StatusCode::kUnauthenticated)
          ? static_cast<absl::StatusCode>(code)
          : absl::StatusCode::kUnknown;
  return absl::Status(absl_code, status.error_message());
}

}  // namespace shoal
