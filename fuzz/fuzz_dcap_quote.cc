// Fuzz target: the DCAP quote parser (TDX v4/v5, SGX v3) and the PCK chain
// parser behind it. Invariants: a parsed quote spans at most the input, its
// signed bytes are the input's prefix, and parsing exactly its span gives the
// same quote.
#include <cstdint>
#include <cstdlib>

#include "common/bytes.h"
#include "verifier/dcap/pck.h"
#include "verifier/dcap/quote.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace dcap = kbs::verifier::dcap;
  absl::Span<const uint8_t> input(data, size);
  auto quote = dcap::ParseQuote(input);
  if (!quote.ok()) return 0;
  if (quote->size > size || quote->signed_bytes.size() > quote->size ||
      kbs::common::AsStringView(input.subspan(0, quote->signed_bytes.size())) !=
          quote->signed_bytes) {
    std::abort();
  }
  if (quote->td.has_value() == quote->enclave.has_value()) std::abort();
  auto again = dcap::ParseQuote(input.subspan(0, quote->size));
  if (!again.ok() || again->signed_bytes != quote->signed_bytes ||
      again->pck_chain_pem != quote->pck_chain_pem ||
      again->qe_report.raw != quote->qe_report.raw) {
    std::abort();
  }
  (void)dcap::ParsePckChain(quote->pck_chain_pem);
  return 0;
}
