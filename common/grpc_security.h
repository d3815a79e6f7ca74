#pragma once

// The one place where gRPC servers and channels get their credentials and
// limits. Production runs mutual TLS with a fleet CA: every server requires a
// client certificate issued by that CA, and every channel presents one and
// checks the server's certificate against the same CA and the host name it
// dialled. `--insecure` (plaintext, no identities) exists for local demos and
// is refused for anything but a loopback address or a unix socket.
//
// Typical use in a daemon:
//
//   ASSIGN_OR_RETURN(GrpcSecurity security, GrpcSecurity::Create(tls_flags));
//   ASSIGN_OR_RETURN(auto creds, security.ServerCredentials(listen));
//   grpc::ServerBuilder builder;
//   security.ConfigureServer(builder);
//   builder.AddListeningPort(listen, creds, &port);
//   ...
//   ASSIGN_OR_RETURN(auto channel, security.MakeChannel(tracker_address));

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

// Largest gRPC message either side sends or accepts: a 4 MiB piece with its
// proof fits with room to spare, and so does a piece of up to 8 MiB.
inline constexpr int kMaxMessageBytes = 16 * 1024 * 1024;
// Client keepalive: a ping after this much idle time, and the connection is
// dropped if its answer takes longer than the timeout. Pings are sent even
// with no call in flight, so a dead peer is noticed before the next call.
inline constexpr int kKeepaliveTimeMs = 30 * 1000;
inline constexpr int kKeepaliveTimeoutMs = 10 * 1000;
// Servers accept client pings this often (below kKeepaliveTimeMs, so our
// clients are never told "too many pings").
inline constexpr int kMinClientPingIntervalMs = 20 * 1000;
// Concurrent calls one client connection may hold open on a server.
inline constexpr int kMaxConcurrentStreams = 256;
// Longest wait between reconnection attempts to an unreachable server
// (gRPC's default is two minutes, long for a restarting tracker).
inline constexpr int kMaxReconnectBackoffMs = 10 * 1000;

// The TLS flags every binary takes. All paths are PEM files.
struct TlsFlags {
  std::string cert;       // --tls_cert: this process's certificate (chain).
  std::string key;        // --tls_key: its unencrypted private key.
  std::string ca;         // --tls_ca: the fleet CA certificate(s) to trust.
  bool insecure = false;  // --insecure: plaintext, loopback only.
};

// Credentials and limits for gRPC servers and channels, built once from the
// TLS flags. Immutable and cheap to copy; thread-safe.
class GrpcSecurity {
 public:
  // Validates the flags and reads the PEM files now, so a misconfiguration
  // stops the process at startup rather than at the first handshake.
  // INVALID_ARGUMENT unless exactly one of: all three of cert, key and ca, or
  // insecure; also when a file is not the PEM it should be, the key does not
  // match the certificate, or the certificate does not verify against the CA
  // (expired, not yet valid, issued by another CA). A file that cannot be read
  // gives its read error (NOT_FOUND, PERMISSION_DENIED, ...). Every message
  // names the flag and the path.
  static absl::StatusOr<GrpcSecurity> Create(const TlsFlags& flags);

  bool insecure() const { return insecure_; }

  // Server credentials for `listen_address` (HOST:PORT, or a unix: address).
  // With TLS, clients must present a certificate that verifies against the CA
  // (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY). Insecure:
  // FAILED_PRECONDITION unless the address is loopback or a unix socket.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
      const std::string& listen_address) const;

  // A channel to `target` (HOST:PORT, or a unix: address when insecure) with
  // our limits and keepalive. With TLS, it presents our certificate and
  // accepts the server only if its certificate verifies against the CA and
  // names the target's host (a DNS SAN, or an IP SAN for a numeric host).
  // Insecure: FAILED_PRECONDITION unless the target is loopback or a unix
  // socket. The channel connects lazily; handshake failures surface as
  // UNAVAILABLE on the first call.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
      const std::string& target) const;

  // The channel arguments MakeChannel uses: message size limits, keepalive,
  // reconnect backoff. For code that must build a channel itself.
  static grpc::ChannelArguments ChannelArgs();

  // Applies our server limits to `builder`: message size limits, a keepalive
  // policy that accepts our clients' pings (also with no call in flight),
  // server-side keepalive, and kMaxConcurrentStreams.
  void ConfigureServer(grpc::ServerBuilder& builder) const;

 private:
  GrpcSecurity() = default;

  bool insecure_ = false;
  // PEM text, read at Create.
  std::string cert_chain_;
  std::string private_key_;
  std::string ca_certs_;
};

// The authenticated identity of the caller: the first DNS or URI subject
// alternative name of its verified client certificate, else its common name.
// "" when the call did not come over TLS with a verified client certificate
// (an insecure server, for one).
std::string CallerIdentity(const grpc::AuthContext& auth);

// True for 127.0.0.0/8, ::1 (also IPv4-mapped ::ffff:127.x.y.z) and
// "localhost" (any case), each with or without ":PORT"; IPv6 hosts with a
// port are bracketed: "[::1]:50051". False for anything else, including
// malformed input and wildcard addresses (0.0.0.0, ::).
bool IsLoopbackAddress(absl::string_view host_port);

// The address a server bound: the host of `listen_address` (HOST:PORT, IPv6
// hosts bracketed) with `port`, the port it actually got (for port 0).
std::string BoundAddress(absl::string_view listen_address, int port);

// True for gRPC unix socket addresses ("unix:PATH", "unix-abstract:NAME"):
// reachable only from this machine, like loopback.
bool IsUnixSocketAddress(absl::string_view address);

// Converts a Status at the RPC edge: same code and message. OK maps to OK.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace shoal
