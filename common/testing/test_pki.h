#pragma once

// A throwaway certificate authority for tests of mutual TLS: a CA and the
// certificates it issues, written as PEM files into a test's temporary
// directory. Keys are EC P-256; certificates are valid from an hour ago for
// one day. For tests only: the CA key sits unprotected beside its
// certificate.
//
//   ASSIGN_OR_RETURN(TestPki pki, MakeTestPki(dir));
//   ASSIGN_OR_RETURN(TlsFlags server,
//                    IssueTestCert(pki, "tracker", {"localhost"},
//                                  {"127.0.0.1"}));
//   ASSIGN_OR_RETURN(TestPki other, MakeTestPki(dir, "other-ca"));  // Foreign.
//
// Functions are thread-compatible: concurrent calls must not write the same
// file names.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_security.h"

namespace shoal {

// One test CA. All fields are paths.
struct TestPki {
  std::string dir;      // Where the CA and its certificates are written.
  std::string ca_cert;  // <dir>/<ca name>.pem
  std::string ca_key;   // <dir>/<ca name>.key
};

// Creates a self-signed CA (CN = `ca_name`) and writes `<ca_name>.pem` and
// `<ca_name>.key` into `dir`, which must exist. Each call makes a new key, so
// two CAs are unrelated even with the same name. Errors: the file write
// errors, naming the path; INTERNAL if OpenSSL fails.
absl::StatusOr<TestPki> MakeTestPki(const std::string& dir,
                                    const std::string& ca_name = "ca");

// Issues a certificate for `name` (its CN) with the given subject alternative
// names, usable as both TLS server and client, and writes `<name>.pem` and
// `<name>.key` into `pki.dir`. SANs appear in the certificate in this order:
// URIs, DNS names, IP addresses. Returns the flags to use it with this CA.
// INVALID_ARGUMENT for an IP SAN that is not a numeric IPv4 or IPv6 address.
absl::StatusOr<TlsFlags> IssueTestCert(
    const TestPki& pki, const std::string& name,
    const std::vector<std::string>& dns_sans,
    const std::vector<std::string>& ip_sans,
    const std::vector<std::string>& uri_sans = {});

// Writes the CA certificates of `pkis`, concatenated, to `path`: a --tls_ca
// bundle that trusts all of them.
absl::Status WriteCaBundle(const std::vector<TestPki>& pkis,
                           const std::string& path);

}  // namespace shoal
