#include "common/openssl_util.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace kbs::common {

EvpPkeyPtr ShareKey(const EVP_PKEY* key) {
  // Up-referencing only fails on a lock error, which OpenSSL cannot report
  // otherwise; a null pointer then, never a dangling one.
  EVP_PKEY* k = const_cast<EVP_PKEY*>(key);
  return EVP_PKEY_up_ref(k) == 1 ? EvpPkeyPtr(k) : EvpPkeyPtr();
}

absl::Status OpenSslError(absl::string_view what, absl::StatusCode code) {
  unsigned long err = ERR_get_error();
  std::string detail;
  if (err != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    detail = absl::StrCat(": ", buf);
  }
  ERR_clear_error();
  return absl::Status(code, absl::StrCat(what, detail));
}

}  // namespace kbs::common
