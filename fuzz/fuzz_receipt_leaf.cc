// Fuzz target: the receipt leaf decoder (what auditors' tools read back),
// re-encoding of whatever it accepts, and the quick index scan.
#include <cstdint>

#include "kbs/receipts/receipt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view leaf(reinterpret_cast<const char*>(data), size);
  auto receipt = kbs::receipts::ParseReceiptLeaf(leaf);
  if (receipt.ok()) {
    auto again = kbs::receipts::ReceiptLeaf(*receipt);
    // Accepted leaves are canonical: they re-encode to themselves.
    if (!again.ok() || *again != leaf) __builtin_trap();
    // The quick scan `audit verify` uses agrees with the decoder.
    auto index = kbs::receipts::LeafIndex(leaf);
    if (!index.ok() || *index != receipt->index) __builtin_trap();
  }
  (void)kbs::receipts::LeafIndex(leaf);  // never crashes or reads out of bounds
  return 0;
}
