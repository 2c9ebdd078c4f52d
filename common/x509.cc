#include "common/x509.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"

namespace kbs::common {
namespace {

using Asn1ObjectPtr = std::unique_ptr<ASN1_OBJECT, OpenSslDeleter<ASN1_OBJECT, ASN1_OBJECT_free>>;

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

}  // namespace

absl::Time FromAsn1Time(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromUnixSeconds(static_cast<int64_t>(timegm(&tm)));
}

absl::StatusOr<X509Ptr> ParseDerCertificate(absl::Span<const uint8_t> der) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert || p != der.data() + der.size()) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a DER X.509 certificate");
  }
  return cert;
}

absl::StatusOr<std::vector<X509Ptr>> ParsePemCertificates(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<X509Ptr> out;
  while (bio) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    out.emplace_back(cert);
  }
  ERR_clear_error();
  if (out.empty()) return absl::InvalidArgumentError("no PEM certificate found");
  return out;
}

absl::StatusOr<std::string> CertificateDer(const X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return OpenSslError("encoding certificate");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> CertificateSha256(const X509* cert) {
  auto der = CertificateDer(cert);
  if (!der.ok()) return der.status();
  return Sha256(*der);
}

std::string CommonName(const X509* cert) {
  char buf[256] = {0};
  X509_NAME* name = X509_get_subject_name(cert);
  if (name == nullptr || X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof(buf)) < 0) {
    return "";
  }
  return buf;
}

bool IsSignedBy(const X509* cert, const X509* issuer) {
  EVP_PKEY* key = X509_get0_pubkey(issuer);
  bool ok = key != nullptr && X509_verify(const_cast<X509*>(cert), key) == 1;
  ERR_clear_error();
  return ok;
}

absl::Status CheckValidity(const X509* cert, absl::Time at, absl::string_view what) {
  absl::Time not_before = FromAsn1Time(X509_get0_notBefore(cert));
  absl::Time not_after = FromAsn1Time(X509_get0_notAfter(cert));
  if (at < not_before) {
    return absl::UnauthenticatedError(
        absl::StrCat(what, " certificate is not valid before ", Rfc3339(not_before)));
  }
  if (at > not_after) {
    return absl::UnauthenticatedError(
        absl::StrCat(what, " certificate expired at ", Rfc3339(not_after)));
  }
  return absl::OkStatus();
}

absl::Time NotBefore(const X509* cert) { return FromAsn1Time(X509_get0_notBefore(cert)); }
absl::Time NotAfter(const X509* cert) { return FromAsn1Time(X509_get0_notAfter(cert)); }

std::optional<std::string> ExtensionValue(const X509* cert, absl::string_view oid) {
  Asn1ObjectPtr obj(OBJ_txt2obj(std::string(oid).c_str(), /*no_name=*/1));
  if (!obj) return std::nullopt;
  int index = X509_get_ext_by_OBJ(cert, obj.get(), -1);
  if (index < 0) return std::nullopt;
  X509_EXTENSION* ext = X509_get_ext(cert, index);
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
  if (data == nullptr) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

absl::StatusOr<int64_t> DecodeDerInteger(absl::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ASN1_INTEGER, OpenSslDeleter<ASN1_INTEGER, ASN1_INTEGER_free>> value(
      d2i_ASN1_INTEGER(nullptr, &p, static_cast<long>(der.size())));
  int64_t out = 0;
  if (!value || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size() ||
      ASN1_INTEGER_get_int64(&out, value.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a DER INTEGER");
  }
  return out;
}

absl::StatusOr<std::string> DecodeDerIa5String(absl::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ASN1_IA5STRING, OpenSslDeleter<ASN1_IA5STRING, ASN1_IA5STRING_free>> value(
      d2i_ASN1_IA5STRING(nullptr, &p, static_cast<long>(der.size())));
  if (!value || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a DER IA5String");
  }
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value.get())),
                     static_cast<size_t>(ASN1_STRING_length(value.get())));
}

absl::StatusOr<X509CrlPtr> ParseCrl(absl::string_view der_or_pem) {
  BioPtr bio(BIO_new_mem_buf(der_or_pem.data(), static_cast<int>(der_or_pem.size())));
  X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
  if (crl == nullptr) {
    ERR_clear_error();
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der_or_pem.data());
    crl = d2i_X509_CRL(nullptr, &p, static_cast<long>(der_or_pem.size()));
  }
  ERR_clear_error();
  if (crl == nullptr) return absl::InvalidArgumentError("not a CRL (DER or PEM)");
  return X509CrlPtr(crl);
}

bool IsCrlSignedBy(const X509_CRL* crl, const X509* issuer) {
  EVP_PKEY* key = X509_get0_pubkey(issuer);
  bool ok = key != nullptr && X509_CRL_verify(const_cast<X509_CRL*>(crl), key) == 1;
  ERR_clear_error();
  return ok;
}

bool IsRevoked(const X509_CRL* crl, const X509* cert) {
  X509_REVOKED* revoked = nullptr;
  return X509_CRL_get0_by_cert(const_cast<X509_CRL*>(crl), &revoked, const_cast<X509*>(cert)) == 1;
}

}  // namespace kbs::common
