// A throw-away self-signed certificate (OpenSSL API, EC P-256 by default, RSA 2048 on request) for
// tests of TLS endpoints: written as PEM files into a directory, valid for 127.0.0.1 and localhost.
#pragma once

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <string>

namespace tideslice::testsupport {

struct TlsFiles {
  std::string cert_file, key_file, cert_pem;
};

// A certificate as PEM text.
inline std::string PemOf(X509* cert) {
  BIO* mem = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(mem, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(mem, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(mem);
  return pem;
}

enum class KeyType { kEcP256, kRsa2048 };

// Files are `<dir>/<stem>.crt` and `<dir>/<stem>.key`.
inline TlsFiles MakeSelfSignedCert(const std::string& dir, KeyType type = KeyType::kEcP256,
                                   const std::string& stem = "tls") {
  TlsFiles out{dir + "/" + stem + ".crt", dir + "/" + stem + ".key", ""};
  EVP_PKEY* key = type == KeyType::kEcP256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair<int, const char*>{NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
                            {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(cert, key, EVP_sha256());
  FILE* f = std::fopen(out.key_file.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  f = std::fopen(out.cert_file.c_str(), "w");
  PEM_write_X509(f, cert);
  std::fclose(f);
  out.cert_pem = PemOf(cert);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace tideslice::testsupport
