// Fuzz target: the sealed-file header parser, and the chunk reader behind it.
// Invariants: the buffer parser and the stream reader agree; a parsed header
// is exactly the input's first bytes and its fields are in range; every
// failure has a documented code. The seeds (corpus/fuzz_sealed_header) are
// sealed with kFuzzKey, so mutations past the header reach the chunk logic
// (truncation, trailing data, corrupted tags) with a key that passes the
// key check; Unseal never releases more bytes than the input holds.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "kbs/sealed/sealed.h"

namespace {

// 32 bytes of 0x5a: the key the seed corpus is sealed with.
const std::string& FuzzKey() {
  static const std::string* const kKey = new std::string(32, '\x5a');
  return *kKey;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace sealed = kbs::sealed;
  std::string bytes(reinterpret_cast<const char*>(data), size);

  size_t consumed = 0;
  auto header = sealed::ParseSealHeader(bytes, &consumed);
  std::istringstream header_stream(bytes);
  auto streamed = sealed::ReadSealHeader(header_stream);
  if (header.ok() != streamed.ok()) std::abort();
  if (header.ok()) {
    if (consumed > size || header->raw != bytes.substr(0, consumed) ||
        streamed->raw != header->raw || consumed != 68 + header->resource_path.size() ||
        header->chunk_size < sealed::kMinChunkSize || header->chunk_size > sealed::kMaxChunkSize ||
        header->nonce_prefix.size() != sealed::kNoncePrefixSize ||
        header->key_check.size() != sealed::kKeyCheckSize) {
      std::abort();
    }
  } else if (header.status().code() != absl::StatusCode::kInvalidArgument ||
             streamed.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }

  std::istringstream in(bytes);
  std::ostringstream out;
  absl::Status s = sealed::Unseal(in, out, kbs::common::AsSpan(FuzzKey()));
  if (s.ok() && !header.ok()) std::abort();
  if (out.str().size() > size) std::abort();
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kDataLoss:
      break;
    default:
      std::abort();
  }
  return 0;
}
