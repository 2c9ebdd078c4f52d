#include "tests/testing/test_certs.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/keys.h"
#include "common/openssl_util.h"
#include "common/status_macros.h"

namespace kbs::testing {

absl::StatusOr<TlsFiles> MakeLoopbackCertificate() {
  KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr key, common::GenerateEcKey(common::EcCurve::kP256));
  common::X509Ptr cert(X509_new());
  if (!cert) return common::OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("kbs test"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] :
       {std::pair<int, const char*>{NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
        {NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) return common::OpenSslError("X509V3_EXT_conf_nid");
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return common::OpenSslError("X509_sign");
  }
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  TlsFiles out;
  out.cert_pem.assign(data, static_cast<size_t>(len));
  KBS_ASSIGN_OR_RETURN(out.key_pem, common::PrivateKeyToPem(key.get()));
  return out;
}

}  // namespace kbs::testing
