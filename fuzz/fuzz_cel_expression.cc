// Fuzz target: the policy-condition language (lexer, parser, checker,
// evaluator). Compiles the input with the default limits and, when it
// compiles, evaluates it against a small fixed claims map. Invariants: an
// outcome has an explanation exactly when it does not pass, and evaluation
// is deterministic.
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "policy/cel/expression.h"
#include "policy/value.h"

namespace {

using kbs::policy::Value;
using kbs::policy::ValueMap;

Value Object(std::initializer_list<std::pair<const char*, Value>> members) {
  ValueMap map;
  for (const auto& [key, value] : members) map.entries.emplace(key, value);
  return Value::Map(std::move(map));
}

const Value& FuzzClaims() {
  static const Value* const kClaims = new Value(Object({
      {"debug", Value::Bool(false)},
      {"tee", Value::String("snp")},
      {"tcb_status", Value::String("UpToDate")},
      {"images", Value::List({Value::String("a"), Value::String("b")})},
      {"count", Value::Int(3)},
      {"ratio", Value::Double(1.5)},
      {"nothing", Value()},
      {"snp", Object({{"tcb", Object({{"snp", Value::Int(8)}})},
                      {"policy", Value::Int(196608)},
                      {"product", Value::String("Genoa")},
                      {"vmpl", Value::Int(0)}})},
  }));
  return *kClaims;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view source(reinterpret_cast<const char*>(data), size);
  auto expr = kbs::policy::cel::Expression::Compile(source);
  if (!expr.ok()) return 0;
  kbs::policy::cel::Outcome first = (*expr)->Evaluate(FuzzClaims());
  if (first.pass != first.explanation.empty()) std::abort();
  kbs::policy::cel::Outcome second = (*expr)->Evaluate(FuzzClaims());
  if (second.pass != first.pass || second.explanation != first.explanation) std::abort();
  return 0;
}
