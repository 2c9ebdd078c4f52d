#include "common/openssl_util.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace kbs::common {

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
