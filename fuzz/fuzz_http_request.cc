// Fuzz target: raw bytes through the HTTP request parser and, when a request
// parses, through the router of an in-process KBS. Invariant: a client can
// never cause a 5xx.
#include <boost/asio/buffer.hpp>
#include <cstdint>
#include <cstdlib>

#include "kbs/http/request_parser.h"
#include "kbs/http/router.h"
#include "tests/testing/in_process_kbs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kbs::testing::InProcessKbs* const kKbs = [] {
    auto* k = kbs::testing::InProcessKbs::Create({.allow_sample = true, .max_sessions = 1 << 20})
                  .release();
    (void)k->broker()->SetPolicy(k->AdminToken(absl::Hours(24 * 365)), "allow-all");
    (void)k->broker()->PutResource(k->AdminToken(absl::Hours(24 * 365)), "a/b/c", "value");
    return k;
  }();
  static kbs::http::Metrics metrics;
  static kbs::http::Router router(kKbs->broker(), kKbs->sessions(), &metrics);

  kbs::http::RequestParser parser(16384, 65536, 65536);
  parser.eager(true);
  boost::beast::error_code ec;
  size_t used = parser.put(boost::asio::const_buffer(data, size), ec);
  if (!ec && !parser.is_done() && used < size) {
    parser.put(boost::asio::const_buffer(data + used, size - used), ec);
  }
  if (ec || !parser.is_done()) return 0;
  kbs::http::HttpResponse response = router.Handle(parser.request());
  if (response.status >= 500 && response.status != 503) std::abort();
  return 0;
}
