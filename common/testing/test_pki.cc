#include "common/testing/test_pki.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace shoal {
namespace {

constexpr long kBackdateSeconds = 60 * 60;  // Tolerates clock skew.
constexpr long kLifetimeSeconds = 24 * 60 * 60;
constexpr uint64_t kMaxPemBytes = 1 << 20;

struct OpenSslFree {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, OpenSslFree>;

// INTERNAL with OpenSSL's reason unless `ok`.
absl::Status Check(bool ok, absl::string_view what) {
  if (ok) return absl::OkStatus();
  char reason[256] = "unknown error";
  if (unsigned long error = ERR_get_error()) {
    ERR_error_string_n(error, reason, sizeof(reason));
  }
  ERR_clear_error();
  return absl::InternalError(absl::StrCat("test PKI: ", what, ": ", reason));
}

absl::StatusOr<Owned<EVP_PKEY>> NewKey() {
  Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr));
  EVP_PKEY* key = nullptr;
  RETURN_IF_ERROR(Check(ctx != nullptr &&
                            EVP_PKEY_keygen_init(ctx.get()) == 1 &&
                            EVP_PKEY_CTX_set_ec_paramgen_curve_nid(
                                ctx.get(), NID_X9_62_prime256v1) == 1 &&
                            EVP_PKEY_keygen(ctx.get(), &key) == 1,
                        "generating an EC P-256 key"));
  return Owned<EVP_PKEY>(key);
}

// A certificate for `key` named `common_name`, valid now for a day, with a
// random serial; issuer, extensions and signature are left to the caller.
absl::StatusOr<Owned<X509>> NewCertificate(const std::string& common_name,
                                           EVP_PKEY* key) {
  Owned<X509> cert(X509_new());
  Owned<BIGNUM> serial(BN_new());
  RETURN_IF_ERROR(Check(cert != nullptr && serial != nullptr, "allocating"));
  X509_NAME* subject = X509_get_subject_name(cert.get());
  RETURN_IF_ERROR(Check(
      X509_set_version(cert.get(), 2) == 1 &&
          BN_rand(serial.get(), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
          BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) !=
              nullptr &&
          X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) !=
              nullptr &&
          X509_gmtime_adj(X509_getm_notAfter(cert.get()), kLifetimeSeconds) !=
              nullptr &&
          X509_NAME_add_entry_by_txt(
              subject, "CN", MBSTRING_UTF8,
              reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
              -1, 0) == 1 &&
          X509_set_pubkey(cert.get(), key) == 1,
      "filling in a certificate"));
  return cert;
}

// Adds extensions given in OpenSSL's config syntax, e.g.
// {NID_basic_constraints, "critical,CA:TRUE"}; `issuer` is `cert` itself for
// a self-signed certificate.
absl::Status AddExtensions(
    X509* cert, X509* issuer,
    const std::vector<std::pair<int, std::string>>& extensions) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  for (const auto& [nid, value] : extensions) {
    Owned<X509_EXTENSION> extension(
        X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
    RETURN_IF_ERROR(Check(
        extension != nullptr && X509_add_ext(cert, extension.get(), -1) == 1,
        absl::StrCat("adding extension ", OBJ_nid2sn(nid), "=", value)));
  }
  return absl::OkStatus();
}

// Writes `cert` and `key` as <dir>/<name>.pem and <dir>/<name>.key.
absl::Status WritePair(const std::string& dir, const std::string& name,
                       X509* cert, EVP_PKEY* key) {
  Owned<BIO> cert_pem(BIO_new(BIO_s_mem()));
  Owned<BIO> key_pem(BIO_new(BIO_s_mem()));
  RETURN_IF_ERROR(
      Check(cert_pem != nullptr && key_pem != nullptr &&
                PEM_write_bio_X509(cert_pem.get(), cert) == 1 &&
                PEM_write_bio_PrivateKey(key_pem.get(), key, nullptr, nullptr,
                                         0, nullptr, nullptr) == 1,
            "encoding PEM"));
  auto text = [](BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return std::string(data, size);
  };
  RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(dir, "/", name, ".pem"),
                                      text(cert_pem.get()), 0644,
                                      /*durable=*/false));
  return WriteFileAtomically(absl::StrCat(dir, "/", name, ".key"),
                             text(key_pem.get()), 0600, /*durable=*/false);
}

// The CA's certificate and key, read back from its files.
absl::Status LoadCa(const TestPki& pki, Owned<X509>& cert,
                    Owned<EVP_PKEY>& key) {
  ASSIGN_OR_RETURN(std::string cert_pem, ReadFile(pki.ca_cert, kMaxPemBytes));
  ASSIGN_OR_RETURN(std::string key_pem, ReadFile(pki.ca_key, kMaxPemBytes));
  Owned<BIO> cert_bio(BIO_new_mem_buf(cert_pem.data(), cert_pem.size()));
  Owned<BIO> key_bio(BIO_new_mem_buf(key_pem.data(), key_pem.size()));
  cert.reset(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  return Check(cert != nullptr && key != nullptr,
               absl::StrCat("reading the CA from ", pki.ca_cert));
}

// The subjectAltName value in OpenSSL's config syntax.
absl::StatusOr<std::string> SanValue(const std::vector<std::string>& dns_sans,
                                     const std::vector<std::string>& ip_sans,
                                     const std::vector<std::string>& uri_sans) {
  std::vector<std::string> entries;
  for (const std::string& uri : uri_sans) entries.push_back("URI:" + uri);
  for (const std::string& dns : dns_sans) entries.push_back("DNS:" + dns);
  for (const std::string& ip : ip_sans) {
    unsigned char buffer[sizeof(in6_addr)];
    if (inet_pton(AF_INET, ip.c_str(), buffer) != 1 &&
        inet_pton(AF_INET6, ip.c_str(), buffer) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("IP SAN \"", ip, "\" is not a numeric IP address"));
    }
    entries.push_back("IP:" + ip);
  }
  for (const std::string& entry : entries) {
    if (absl::StrContains(entry, ",")) {
      return absl::InvalidArgumentError(
          absl::StrCat("SAN \"", entry, "\" contains a comma"));
    }
  }
  return absl::StrJoin(entries, ",");
}

}  // namespace

absl::StatusOr<TestPki> MakeTestPki(const std::string& dir,
                                    const std::string& ca_name) {
  ASSIGN_OR_RETURN(Owned<EVP_PKEY> key, NewKey());
  ASSIGN_OR_RETURN(Owned<X509> cert, NewCertificate(ca_name, key.get()));
  RETURN_IF_ERROR(Check(
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) == 1,
      "setting the issuer"));
  RETURN_IF_ERROR(
      AddExtensions(cert.get(), cert.get(),
                    {{NID_basic_constraints, "critical,CA:TRUE"},
                     {NID_key_usage, "critical,keyCertSign,cRLSign"},
                     {NID_subject_key_identifier, "hash"}}));
  RETURN_IF_ERROR(Check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0,
                        "signing the CA certificate"));
  RETURN_IF_ERROR(WritePair(dir, ca_name, cert.get(), key.get()));
  return TestPki{dir, absl::StrCat(dir, "/", ca_name, ".pem"),
                 absl::StrCat(dir, "/", ca_name, ".key")};
}

absl::StatusOr<TlsFlags> IssueTestCert(
    const TestPki& pki, const std::string& name,
    const std::vector<std::string>& dns_sans,
    const std::vector<std::string>& ip_sans,
    const std::vector<std::string>& uri_sans) {
  ASSIGN_OR_RETURN(std::string san, SanValue(dns_sans, ip_sans, uri_sans));
  Owned<X509> ca_cert;
  Owned<EVP_PKEY> ca_key;
  RETURN_IF_ERROR(LoadCa(pki, ca_cert, ca_key));
  ASSIGN_OR_RETURN(Owned<EVP_PKEY> key, NewKey());
  ASSIGN_OR_RETURN(Owned<X509> cert, NewCertificate(name, key.get()));
  RETURN_IF_ERROR(Check(
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) ==
          1,
      "setting the issuer"));
  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth,clientAuth"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"}};
  if (!san.empty()) extensions.push_back({NID_subject_alt_name, san});
  RETURN_IF_ERROR(AddExtensions(cert.get(), ca_cert.get(), extensions));
  RETURN_IF_ERROR(Check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0,
                        "signing the certificate"));
  RETURN_IF_ERROR(WritePair(pki.dir, name, cert.get(), key.get()));
  TlsFlags flags;
  flags.cert = absl::StrCat(pki.dir, "/", name, ".pem");
  flags.key = absl::StrCat(pki.dir, "/", name, ".key");
  flags.ca = pki.ca_cert;
  return flags;
}

absl::Status WriteCaBundle(const std::vector<TestPki>& pkis,
                           const std::string& path) {
  std::string bundle;
  for (const TestPki& pki : pkis) {
    ASSIGN_OR_RETURN(std::string pem, ReadFile(pki.ca_cert, kMaxPemBytes));
    bundle += pem;
  }
  return WriteFileAtomically(path, bundle, 0644, /*durable=*/false);
}

}  // namespace shoal
