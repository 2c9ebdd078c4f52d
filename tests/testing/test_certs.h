// Test helper: a self-signed TLS certificate for 127.0.0.1 (subjectAltName
// IP and DNS localhost), made with OpenSSL's X509 API.
#ifndef KBS_TESTS_TESTING_TEST_CERTS_H_
#define KBS_TESTS_TESTING_TEST_CERTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace kbs::testing {

struct TlsFiles {
  std::string cert_pem;
  std::string key_pem;
};

// An EC P-256 key and a 1-day self-signed certificate valid for
// 127.0.0.1 and localhost.
absl::StatusOr<TlsFiles> MakeLoopbackCertificate();

}  // namespace kbs::testing

#endif  // KBS_TESTS_TESTING_TEST_CERTS_H_
