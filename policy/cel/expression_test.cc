#include "policy/cel/expression.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Counts heap allocations made by the current thread while enabled, to check
// that evaluating the common operators does not allocate. (GCC cannot see
// that the replaced operator new below is malloc-based and warns about every
// inlined delete.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
thread_local bool g_count_allocations = false;
thread_local int g_allocations = 0;
}  // namespace

void* operator new(size_t size) {
  if (g_count_allocations) ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace kbs::policy::cel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Value Claims(absl::string_view json) {
  auto parsed = common::ParseJson(json);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return Value::FromJson(*parsed);
}

const Value& TestClaims() {
  static const Value* const kClaims = new Value(Claims(R"json({
    "debug": false,
    "tee": "snp",
    "tcb_status": "UpToDate",
    "images": ["a", "b"],
    "count": 3,
    "ratio": 1.5,
    "big": 9007199254740993,
    "min_int": -9223372036854775808,
    "nothing": null,
    "unicode": "h\u00e9llo",
    "labels": {"env": "prod", "a.b": "dotted"},
    "snp": {
      "tcb": {"snp": 8, "microcode": 115},
      "policy": 196608,
      "product": "Genoa",
      "vmpl": 0
    },
    "tdx": {
      "mr_td": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
    }
  })json"));
  return *kClaims;
}

Outcome EvalSource(absl::string_view source, const Value& claims = TestClaims(),
                   const Limits& limits = {}) {
  auto expr = Expression::Compile(source, limits);
  EXPECT_TRUE(expr.ok()) << source << ": " << expr.status();
  if (!expr.ok()) return Outcome{false, "(did not compile)"};
  return (*expr)->Evaluate(claims);
}

// ---- Evaluation: one row per case, the outcome and (for a deny) a fragment
// of the explanation. ----

struct EvalCase {
  const char* source;
  bool pass;
  const char* explanation = "";  // fragment; checked only when !pass
};

void PrintTo(const EvalCase& c, std::ostream* os) { *os << c.source; }

class EvalTest : public ::testing::TestWithParam<EvalCase> {};

TEST_P(EvalTest, Outcome) {
  const EvalCase& c = GetParam();
  Outcome out = EvalSource(c.source);
  EXPECT_EQ(out.pass, c.pass) << c.source << " -> " << out.explanation;
  if (c.pass) {
    EXPECT_EQ(out.explanation, "") << c.source;
  } else {
    EXPECT_THAT(out.explanation, HasSubstr(c.explanation)) << c.source;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Literals, EvalTest,
    ::testing::Values(EvalCase{"true", true}, EvalCase{"false", false, "condition is false"},
                      EvalCase{"null == null", true}, EvalCase{"0x10 == 16", true},
                      EvalCase{"0XfF == 255", true}, EvalCase{"-0x10 == -16", true},
                      EvalCase{"1e3 == 1000", true}, EvalCase{".5 == 0.5", true},
                      EvalCase{"2.5e-1 == 0.25", true}, EvalCase{"007 == 7", true},
                      EvalCase{"-9223372036854775808 < -9223372036854775807", true},
                      EvalCase{"9223372036854775807 > 0", true}, EvalCase{"--1 == 1", true},
                      EvalCase{"-(1) == -1", true}, EvalCase{"- 1.5 < -1", true},
                      EvalCase{"[] == []", true}, EvalCase{"{} == {}", true},
                      EvalCase{"[1, 2,] == [1, 2]", true}, EvalCase{"{'a': 1,} == {'a': 1}", true},
                      EvalCase{"// a comment\ntrue // another", true}));

INSTANTIATE_TEST_SUITE_P(
    StringEscapes, EvalTest,
    ::testing::Values(EvalCase{R"('a\nb' == "a\nb")", true},
                      EvalCase{R"('\\' == "\\" && size('\\') == 1)", true},
                      EvalCase{R"('\'' == "'" && "\"" == '"')", true},
                      EvalCase{R"('\t\r\a\b\f\v\?\`' == "\t\r\a\b\f\v?`")", true},
                      EvalCase{R"('\x41\X42' == 'AB')", true}, EvalCase{R"('\101' == 'A')", true},
                      EvalCase{R"('\u00e9' == 'é' && size('\u00e9') == 1)", true},
                      EvalCase{R"('\U0001F600' == '😀' && size('😀') == 1)", true},
                      EvalCase{R"('\xe9' == '\u00e9')", true},
                      EvalCase{R"(r'\n' == '\\n' && size(r'\n') == 2)", true},
                      EvalCase{R"(R"a\d" == 'a\\d')", true},
                      EvalCase{R"('''it's''' == "it's")", true},
                      EvalCase{"\"\"\"two\nlines\"\"\" == 'two\\nlines'", true},
                      EvalCase{R"('' == "")", true}, EvalCase{R"('a' == 'b')", false}));

INSTANTIATE_TEST_SUITE_P(
    Access, EvalTest,
    ::testing::Values(
        EvalCase{"tee == 'snp'", true}, EvalCase{".tee == 'snp'", true},
        EvalCase{"tee == 'tdx'", false, "tee = \"snp\""}, EvalCase{"snp.tcb.snp == 8", true},
        EvalCase{"snp['tcb']['snp'] == 8", true}, EvalCase{"snp.tcb['microcode'] == 115", true},
        EvalCase{"images[0] == 'a'", true}, EvalCase{"images[1] == 'b'", true},
        EvalCase{"labels['a.b'] == 'dotted'", true},
        EvalCase{"labels[labels.env == 'prod' ? 'a.b' : 'env'] == 'dotted'", true},
        EvalCase{"[1, 2][1] == 2", true}, EvalCase{"{'a': 1}['a'] == 1", true},
        EvalCase{"{'a': {'b': true}}.a.b", true}, EvalCase{"{'k': tee}.k == 'snp'", true},
        EvalCase{"[tee, 'x'][0] == 'snp'", true},
        EvalCase{"images[2] == 'c'", false, "index 2 out of range for a list of 2 in images[2]"},
        EvalCase{"images[-1] == 'c'", false, "index -1 out of range"},
        EvalCase{"{'a': 1}['b'] == 1", false, "key \"b\" is absent in {'a': 1}['b']"},
        EvalCase{"images['x'] == 1", false, "type mismatch: cannot index list with string"},
        EvalCase{"labels[0] == 1", false, "type mismatch: cannot index map with int"},
        EvalCase{"tee.x == 1", false, "type mismatch: cannot select field 'x' from string"},
        EvalCase{"nothing.x == 1", false, "cannot select field 'x' from null"},
        EvalCase{"{tee: 1, 'snp': 2}.snp == 2", false, "duplicate map key \"snp\""},
        EvalCase{"{count: 1}.a == 1", false, "map keys must be strings, got int"}));

INSTANTIATE_TEST_SUITE_P(
    Equality, EvalTest,
    ::testing::Values(EvalCase{"count == 3", true}, EvalCase{"count == 3.0", true},
                      EvalCase{"3.0 == count", true}, EvalCase{"ratio == 1.5", true},
                      EvalCase{"count != 4", true}, EvalCase{"count != 3", false, "count = 3"},
                      EvalCase{"1 == 1.0", true}, EvalCase{"1 != 1.5", true},
                      EvalCase{"big == 9007199254740993", true},
                      // 2^53 + 1 is not the double 2^53: no rounding of the int.
                      EvalCase{"big == 9007199254740992.0", false, "big = 9007199254740993"},
                      EvalCase{"big > 9007199254740992.0", true},
                      EvalCase{"9007199254740992 == 9007199254740992.0", true},
                      EvalCase{"[1, 2.0] == [1.0, 2]", true},
                      EvalCase{"images == ['a', 'b']", true},
                      EvalCase{"images == ['a', 'b', 'c']", false, "images = [\"a\", \"b\"]"},
                      EvalCase{"images != ['b', 'a']", true},
                      EvalCase{"labels == {'env': 'prod', 'a.b': 'dotted'}", true},
                      EvalCase{"labels == {'env': 'prod'}", false},
                      EvalCase{"[count] == [3]", true}, EvalCase{"nothing == null", true},
                      EvalCase{"tee != null", true},
                      // Different kinds are unequal, not an error.
                      EvalCase{"tee == 1", false, "tee = \"snp\""}, EvalCase{"tee != 1", true},
                      EvalCase{"debug == 0", false}, EvalCase{"images != {}", true},
                      EvalCase{"true == true && false != true", true}));

INSTANTIATE_TEST_SUITE_P(
    Ordering, EvalTest,
    ::testing::Values(EvalCase{"snp.tcb.snp >= 8", true},
                      EvalCase{"snp.tcb.snp > 8", false, "snp.tcb.snp = 8"},
                      EvalCase{"snp.tcb.snp < 9", true}, EvalCase{"snp.tcb.snp <= 8", true},
                      EvalCase{"snp.tcb.snp <= 7", false}, EvalCase{"ratio > 1", true},
                      EvalCase{"1 < 1.5", true}, EvalCase{"count < 3.5", true},
                      EvalCase{"count >= 3.0", true}, EvalCase{"2.5 > count", false},
                      EvalCase{"'abc' < 'abd'", true}, EvalCase{"tee > 'sn'", true},
                      EvalCase{"'B' < 'a'", true}, EvalCase{"'\u00e9' > 'z'", true},
                      EvalCase{"false < true", true}, EvalCase{"true <= false", false},
                      EvalCase{"tee < 3", false, "type mismatch: string < int in tee < 3"},
                      EvalCase{"images < 3", false, "type mismatch: list < int in images < 3"},
                      EvalCase{"3 >= tee", false, "type mismatch: int >= string"},
                      EvalCase{"nothing < 1", false, "type mismatch: null < int"}));

INSTANTIATE_TEST_SUITE_P(
    In, EvalTest,
    ::testing::Values(EvalCase{"tcb_status in ['UpToDate', 'SWHardeningNeeded']", true},
                      EvalCase{"tee in ['tdx', 'sgx']", false, "tee = \"snp\""},
                      EvalCase{"'a' in images", true},
                      EvalCase{"'c' in images", false, "images = [\"a\", \"b\"]"},
                      EvalCase{"'env' in labels", true}, EvalCase{"'prod' in labels", false},
                      EvalCase{"count in [1, 2, 3.0]", true}, EvalCase{"3.0 in [count]", true},
                      EvalCase{"tee in {'snp': 1}", true}, EvalCase{"count in labels", false},
                      EvalCase{"[1] in [[1], [2]]", true}, EvalCase{"'x' in []", false},
                      EvalCase{"tee in tee", false,
                               "type mismatch: string in string in tee in tee"}));

INSTANTIATE_TEST_SUITE_P(
    Logic, EvalTest,
    ::testing::Values(
        EvalCase{"true && true", true}, EvalCase{"true && false", false},
        EvalCase{"false || true", true}, EvalCase{"false || false", false},
        EvalCase{"!debug && tee == 'snp'", true}, EvalCase{"debug || tee == 'snp'", true},
        EvalCase{"!debug", true}, EvalCase{"!!true", true}, EvalCase{"!true", false},
        EvalCase{"!tee", false, "type mismatch: ! needs bool, got string in !tee"},
        // && binds tighter than ||; relations tighter than &&.
        EvalCase{"true || false && false", true}, EvalCase{"(true || false) && false", false},
        EvalCase{"1 < 2 == true", true}, EvalCase{"!false == true", true},
        // CEL absorption: the deciding side wins over an error on the other.
        EvalCase{"false && missing", false, "missing is absent"},
        EvalCase{"missing && false", false, "missing is absent"}, EvalCase{"true || missing", true},
        EvalCase{"missing || true", true}, EvalCase{"tee && false", false},
        EvalCase{"true || tee", true},
        EvalCase{"missing && true", false, "claim missing is absent"},
        EvalCase{"true && missing", false, "claim missing is absent"},
        EvalCase{"missing || false", false, "claim missing is absent"},
        EvalCase{"missing && other", false, "claim missing is absent"},
        EvalCase{"tee && true", false, "type mismatch: && needs bool, got string in tee && true"},
        EvalCase{"false || tee", false, "type mismatch: || needs bool, got string"},
        EvalCase{"a && b && c && d && e && f && g && h || true", true}));

INSTANTIATE_TEST_SUITE_P(
    Ternary, EvalTest,
    ::testing::Values(EvalCase{"tee == 'snp' ? snp.vmpl == 0 : true", true},
                      EvalCase{"tee == 'snp' ? snp.vmpl == 1 : true", false, "snp.vmpl = 0"},
                      EvalCase{"tee == 'tdx' ? missing : true", true},
                      EvalCase{"false ? false : true ? true : false", true},
                      EvalCase{"true ? false : true ? true : true", false},
                      EvalCase{"(tee == 'snp' ? count : 0) == 3", true},
                      EvalCase{"tee ? true : false", false,
                               "type mismatch: the condition of ?: needs bool, got string"},
                      EvalCase{"missing ? true : true", false, "claim missing is absent"}));

INSTANTIATE_TEST_SUITE_P(
    Negation, EvalTest,
    ::testing::Values(EvalCase{"-count == -3", true}, EvalCase{"-ratio < 0", true},
                      EvalCase{"--count == 3", true},
                      EvalCase{"-tee == 1", false, "- needs int or double, got string in -tee"},
                      EvalCase{"-min_int == 0", false, "integer overflow in -min_int"}));

INSTANTIATE_TEST_SUITE_P(
    Has, EvalTest,
    ::testing::Values(EvalCase{"has(snp.policy)", true}, EvalCase{"has(snp.tcb.snp)", true},
                      EvalCase{"has(snp.nope)", false, "snp.nope is absent"},
                      EvalCase{"!has(snp.nope)", true}, EvalCase{"has(labels.env)", true},
                      EvalCase{"has({'a': 1}.a)", true},
                      EvalCase{"has(nothing_here.x)", false, "claim nothing_here is absent"},
                      EvalCase{"!has(nothing_here.x)", false, "claim nothing_here is absent"},
                      EvalCase{"has(snp.nope.x)", false, "claim snp.nope is absent"},
                      EvalCase{"has(tee.x)", false,
                               "type mismatch: cannot select field 'x' from string in "
                               "has(tee.x)"}));

INSTANTIATE_TEST_SUITE_P(
    Size, EvalTest,
    ::testing::Values(EvalCase{"size(images) == 2", true}, EvalCase{"images.size() == 2", true},
                      EvalCase{"size(images) <= 3", true}, EvalCase{"size(tee) == 3", true},
                      EvalCase{"size(unicode) == 5", true}, EvalCase{"size(labels) == 2", true},
                      EvalCase{"size('') == 0 && size([]) == 0 && size({}) == 0", true},
                      EvalCase{"size([1, 2, 3]) == 3", true},
                      EvalCase{"size(images) > 2", false, "images = "},
                      EvalCase{"size(count) == 1", false,
                               "type mismatch: size() of int in size(count)"},
                      EvalCase{"count.size() == 1", false, "type mismatch: size() of int"}));

INSTANTIATE_TEST_SUITE_P(
    StringFunctions, EvalTest,
    ::testing::Values(
        EvalCase{"snp.product.startsWith(\"Gen\")", true},
        EvalCase{"snp.product.startsWith('Mil')", false, "snp.product = \"Genoa\""},
        EvalCase{"snp.product.endsWith('oa')", true},
        EvalCase{"snp.product.endsWith('Gen')", false},
        EvalCase{"snp.product.contains('eno')", true}, EvalCase{"snp.product.contains('x')", false},
        EvalCase{"tee.startsWith('')", true}, EvalCase{"'abc'.contains(tee)", false},
        EvalCase{"tdx.mr_td.matches('^[0-9a-f]{96}$')", true},
        EvalCase{"tdx.mr_td.matches('^[0-9a-f]{95}$')", false, "tdx.mr_td = \"0001"},
        // Unanchored search, as in CEL.
        EvalCase{"tee.matches('np')", true}, EvalCase{"tee.matches('^np')", false},
        EvalCase{"matches(tee, 'n')", true}, EvalCase{"unicode.matches('^h.llo$')", true},
        EvalCase{"count.startsWith('1')", false,
                 "type mismatch: int.startsWith(string) in count.startsWith('1')"},
        EvalCase{"tee.endsWith(count)", false, "type mismatch: string.endsWith(int)"},
        EvalCase{"tee.contains(images)", false, "type mismatch: string.contains(list)"},
        EvalCase{"count.matches('1')", false, "type mismatch: int.matches(string)"}));

// An absent claim in any position makes the condition false and names the
// claim; it is never a compile or engine error.
INSTANTIATE_TEST_SUITE_P(
    AbsentClaims, EvalTest,
    ::testing::Values(EvalCase{"tcb_level == 'UpToDate'", false, "claim tcb_level is absent"},
                      EvalCase{"'UpToDate' == tcb_level", false, "claim tcb_level is absent"},
                      EvalCase{"tcb_level != 'x'", false, "claim tcb_level is absent"},
                      EvalCase{"snp.tcb.bootloader >= 3", false,
                               "claim snp.tcb.bootloader is absent"},
                      EvalCase{"sev.tcb.snp >= 3", false, "claim sev is absent"},
                      EvalCase{"snp.nope.snp >= 3", false, "claim snp.nope is absent"},
                      EvalCase{"snp['nope'] == 1", false, "claim snp.nope is absent"},
                      EvalCase{"snp[tee] == 1", false, "claim snp[\"snp\"] is absent"},
                      EvalCase{"labels['x.y'] == 1", false, "claim labels[\"x.y\"] is absent"},
                      EvalCase{"images[idx] == 'a'", false, "claim idx is absent"},
                      EvalCase{"level in ['a']", false, "claim level is absent"},
                      EvalCase{"'a' in levels", false, "claim levels is absent"},
                      EvalCase{"size(levels) == 0", false, "claim levels is absent"},
                      EvalCase{"levels.size() == 0", false, "claim levels is absent"},
                      EvalCase{"product.startsWith('G')", false, "claim product is absent"},
                      EvalCase{"tee.startsWith(prefix)", false, "claim prefix is absent"},
                      EvalCase{"product.matches('G')", false, "claim product is absent"},
                      EvalCase{"!debugging", false, "claim debugging is absent"},
                      EvalCase{"-level < 0", false, "claim level is absent"},
                      EvalCase{"level ? true : false", false, "claim level is absent"},
                      EvalCase{"true ? level : false", false, "claim level is absent"},
                      EvalCase{"[level][0] == 1", false, "claim level is absent"},
                      EvalCase{"{'a': level}.a == 1", false, "claim level is absent"},
                      EvalCase{"level", false, "claim level is absent"}));

INSTANTIATE_TEST_SUITE_P(
    NonBoolResult, EvalTest,
    ::testing::Values(EvalCase{"tee", false, "condition result is string \"snp\", not bool"},
                      EvalCase{"snp.tcb.snp", false, "condition result is int 8, not bool"},
                      EvalCase{"images", false, "condition result is list"},
                      EvalCase{"nothing", false, "condition result is null, not bool"},
                      EvalCase{"count == 3 ? tee : true", false, "condition result is string"}));

// ---- Compile errors: the message names the column and the problem. ----

struct ErrorCase {
  const char* source;
  const char* message;  // fragment
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.source; }

class CompileErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(CompileErrorTest, Rejected) {
  const ErrorCase& c = GetParam();
  auto expr = Expression::Compile(c.source);
  ASSERT_FALSE(expr.ok()) << c.source;
  EXPECT_EQ(expr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(expr.status().message(), HasSubstr(c.message)) << c.source;
}

INSTANTIATE_TEST_SUITE_P(
    TypeCheck, CompileErrorTest,
    ::testing::Values(
        ErrorCase{"size(1) == 1", "column 1: size() needs a string, list or map, got int"},
        ErrorCase{"size(true) == 1", "got bool"},
        ErrorCase{"!'x'", "column 1: '!' needs bool, got string"},
        ErrorCase{"'a' < 1", "column 5: cannot compare string < int"},
        ErrorCase{"[1] < [2]", "cannot compare list < list"},
        ErrorCase{"x > {}", "cannot compare dyn > map"},
        ErrorCase{"null <= 1", "cannot compare null <= int"},
        ErrorCase{"1 in 2", "column 3: 'in' needs a list or map on the right, got int"},
        ErrorCase{"x in 'abc'", "'in' needs a list or map on the right, got string"},
        ErrorCase{"1 in {'a': 1}", "map keys are strings; 'in' cannot find int"},
        ErrorCase{"x.startsWith(1)", "column 3: startsWith() needs string operands"},
        ErrorCase{"1.endsWith('a')", "endsWith() needs string operands, got int"},
        ErrorCase{"'abc'.matches('(')", "column 15: invalid regular expression: missing )"},
        ErrorCase{"x.matches('[z-a]')", "invalid regular expression"},
        ErrorCase{"x.matches(y)", "column 11: the pattern of matches() must be a string literal"},
        ErrorCase{"1.matches('a')", "matches() needs a string, got int"},
        ErrorCase{"'abc'", "column 1: a condition must be bool, but this one is string"},
        ErrorCase{"1", "a condition must be bool, but this one is int"},
        ErrorCase{"[true]", "but this one is list"}, ErrorCase{"null", "but this one is null"},
        ErrorCase{"true ? 1 : 2", "but this one is int"},
        ErrorCase{"1 && true", "column 3: '&&' needs bool operands, got int"},
        ErrorCase{"x || 'a'", "'||' needs bool operands, got string"},
        ErrorCase{"1 ? true : false", "the condition of '?:' must be bool, got int"},
        ErrorCase{"-'a' < 1", "column 1: '-' needs int or double, got string"},
        ErrorCase{"!-x", "column 2: unexpected '-'"},
        ErrorCase{"'abc'.x == 1", "column 7: cannot select field 'x' from string"},
        ErrorCase{"[1][0.5] == 1", "column 4: cannot index list with double"},
        ErrorCase{"{'a': 1}[1] == 1", "cannot index map with int"},
        ErrorCase{"x[true] == 1", "cannot index dyn with bool"},
        ErrorCase{"{1: 2}.a == 2", "column 2: map keys must be strings, got int"},
        ErrorCase{"{'a': 1, 'a': 2}.a == 1", "column 10: duplicate map key \"a\""},
        ErrorCase{"1 < 2 < 3", "cannot compare bool < int"}));

INSTANTIATE_TEST_SUITE_P(
    Functions, CompileErrorTest,
    ::testing::Values(ErrorCase{"debug || sise(images) > 1", "column 10: unknown function 'sise'"},
                      ErrorCase{"int(x) == 1", "column 1: unknown function 'int'"},
                      ErrorCase{"tee.foo()", "column 5: unknown method 'foo'"},
                      ErrorCase{"images.exists(i, i == 'a')", "macro 'exists' is not supported"},
                      ErrorCase{"all(images, true)", "macro 'all' is not supported"},
                      ErrorCase{"startsWith(tee, 's')",
                                "'startsWith' is a method: write x.startsWith(y)"},
                      ErrorCase{"size(a, b) == 1", "column 1: size() takes 1 argument, got 2"},
                      ErrorCase{"size() == 1", "size() takes 1 argument, got 0"},
                      ErrorCase{"a.size(1) == 1", "column 3: size() takes 0 arguments, got 1"},
                      ErrorCase{"a.startsWith()", "startsWith() takes 1 argument, got 0"},
                      ErrorCase{"a.contains('a', 'b')", "contains() takes 1 argument, got 2"},
                      ErrorCase{"matches(a)", "matches() takes 2 arguments, got 1"},
                      ErrorCase{"has(tee)", "column 5: has() argument must be a field selection"},
                      ErrorCase{"has(a['b'])", "has() argument must be a field selection"},
                      ErrorCase{"has(a.b, c)", "column 1: has() takes exactly 1 argument, got 2"},
                      ErrorCase{"has()", "has() takes exactly 1 argument, got 0"}));

INSTANTIATE_TEST_SUITE_P(
    Syntax, CompileErrorTest,
    ::testing::Values(ErrorCase{"", "column 1: unexpected end of expression"},
                      ErrorCase{"   ", "column 4: unexpected end of expression"},
                      ErrorCase{"a ==", "column 5: unexpected end of expression"},
                      ErrorCase{"(a", "column 3: expected ')' before the end"},
                      ErrorCase{"a ? b", "expected ':' of the conditional before the end"},
                      ErrorCase{"a b", "column 3: unexpected 'b'"},
                      ErrorCase{")", "column 1: unexpected ')'"},
                      ErrorCase{"[1, 2", "expected ',' or ']' before the end"},
                      ErrorCase{"{'a' 1}", "column 6: expected ':' after the map key, found '1'"},
                      ErrorCase{"f(1 2)", "column 5: expected ',' or ')', found '2'"},
                      ErrorCase{"a.", "column 3: expected a field or method name after '.'"},
                      ErrorCase{"a.1", "column 2: unexpected '.1'"},
                      ErrorCase{"a = b", "column 3: unexpected '='; use '==' to compare"},
                      ErrorCase{"a & b", "column 3: unexpected '&'; use '&&'"},
                      ErrorCase{"a | b", "column 3: unexpected '|'; use '||'"},
                      ErrorCase{"a # b", "column 3: unexpected character '#'"},
                      ErrorCase{"a == 'x' @", "column 10: unexpected character '@'"},
                      ErrorCase{"if == 1", "column 1: 'if' is a reserved word"},
                      ErrorCase{"a.while == 1", "column 3: 'while' is a reserved word"},
                      ErrorCase{"a + 1 > 2", "column 3: operator '+' is not supported"},
                      ErrorCase{"a - 1 > 2", "column 3: operator '-' is not supported"},
                      ErrorCase{"a * 2 > 2", "operator '*' is not supported"},
                      ErrorCase{"a / 2 > 2", "operator '/' is not supported"},
                      ErrorCase{"a % 2 == 0", "operator '%' is not supported"},
                      ErrorCase{"a == 1 ? b : c + d", "column 16: operator '+' is not supported"},
                      ErrorCase{"Foo{a: 1}", "column 4: unexpected '{'"}));

INSTANTIATE_TEST_SUITE_P(
    Literals, CompileErrorTest,
    ::testing::Values(
        ErrorCase{"'abc", "column 1: unterminated string literal"},
        ErrorCase{"a == \"abc", "column 6: unterminated string literal"},
        ErrorCase{"'a\nb' == x", "column 1: unterminated string literal (newline"},
        ErrorCase{"'''abc'' == x", "unterminated string literal"},
        ErrorCase{R"('\q' == x)", "column 2: invalid escape sequence '\\q'"},
        ErrorCase{R"('\x4' == x)", "column 2: \\x escape needs 2 hex digits"},
        ErrorCase{R"('\u12' == x)", "\\u escape needs 4 hex digits"},
        ErrorCase{R"('\uD800' == x)", "escape is not a valid Unicode code point"},
        ErrorCase{R"('\U00110000' == x)", "not a valid Unicode code point"},
        ErrorCase{R"('\18' == x)", "octal escape needs three digits"},
        ErrorCase{"x == '\xff'", "column 7: invalid UTF-8"},
        ErrorCase{"1u == x", "column 1: unsigned integer literals (1u) are not supported"},
        ErrorCase{"0x1U == x", "unsigned integer literals"},
        ErrorCase{"b'abc' == x", "column 1: bytes literals are not supported"},
        ErrorCase{"x == rb'a'", "bytes literals are not supported"},
        ErrorCase{"9223372036854775808 > 0", "column 1: integer literal out of range"},
        ErrorCase{"-9223372036854775809 < 0", "integer literal out of range"},
        ErrorCase{"99999999999999999999 > 0", "integer literal out of range"},
        ErrorCase{"0x10000000000000000 > 0", "integer literal out of range"},
        ErrorCase{"--9223372036854775808 > 0", "column 1: integer overflow in negation"},
        ErrorCase{"1e999 > 0", "column 1: double literal out of range"},
        ErrorCase{"1e+ > 0", "malformed exponent"}, ErrorCase{"0x > 0", "malformed hex literal"},
        ErrorCase{"12ab > 0", "column 3: unexpected character after number"}));

// ---- Explanations, exactly. ----

TEST(ExplanationTest, FalseShowsTheClaimsTheConditionRead) {
  Value claims = Claims(R"({"tcb_status": "OutOfDate", "debug": true,
                            "snp": {"tcb": {"snp": 8}, "policy": 196608}})");
  EXPECT_EQ(EvalSource("tcb_status in ['UpToDate']", claims).explanation,
            "tcb_status = \"OutOfDate\"");
  EXPECT_EQ(EvalSource("!debug", claims).explanation, "debug = true");
  EXPECT_EQ(EvalSource("snp.tcb.snp == 9 || has(snp.id)", claims).explanation,
            "snp.tcb.snp = 8, snp.id is absent");
  EXPECT_EQ(EvalSource("snp.tcb.snp == 9 || tcb_status == 'UpToDate' || debug == false", claims)
                .explanation,
            "snp.tcb.snp = 8, tcb_status = \"OutOfDate\", debug = true");
}

TEST(ExplanationTest, FalseConjunctionShowsTheFirstFalseConjunct) {
  Value claims = Claims(R"({"tcb_status": "OutOfDate", "debug": true,
                            "snp": {"tcb": {"snp": 8}, "policy": 196608}})");
  EXPECT_EQ(EvalSource("snp.tcb.snp >= 9 && has(snp.policy)", claims).explanation,
            "snp.tcb.snp = 8");
  EXPECT_EQ(EvalSource("has(snp.policy) && snp.tcb.snp >= 8 && has(snp.id)", claims).explanation,
            "snp.id is absent");
  EXPECT_EQ(EvalSource("!debug && tcb_status == 'OutOfDate'", claims).explanation, "debug = true");
  EXPECT_EQ(
      EvalSource("snp.policy > 0 && (tcb_status == 'x' || debug == false)", claims).explanation,
      "tcb_status = \"OutOfDate\", debug = true");
  // A conjunct without claims falls back to all the claims read.
  EXPECT_EQ(EvalSource("debug && false", claims).explanation, "debug = true");
  EXPECT_EQ(EvalSource("1 == 2", claims).explanation, "condition is false");
}

TEST(ExplanationTest, LongValuesAreCut) {
  Value claims = Claims(absl::StrCat(R"({"m": ")", std::string(500, 'x'), R"("})"));
  std::string explanation = EvalSource("m == 'y'", claims).explanation;
  EXPECT_THAT(explanation, HasSubstr("m = \"xxxx"));
  EXPECT_LT(explanation.size(), 100u);
}

TEST(ExplanationTest, AbsentClaimNamesTheMissingPart) {
  EXPECT_EQ(EvalSource("tcb_status == 'UpToDate'", Claims("{}")).explanation,
            "claim tcb_status is absent");
  EXPECT_EQ(EvalSource("snp.tcb.snp >= 8", Claims("{}")).explanation, "claim snp is absent");
  EXPECT_EQ(EvalSource("snp.tcb.snp >= 8", Claims(R"({"snp": {}})")).explanation,
            "claim snp.tcb is absent");
  EXPECT_EQ(EvalSource("snp.tcb.snp >= 8", Claims(R"({"snp": {"tcb": {}}})")).explanation,
            "claim snp.tcb.snp is absent");
}

TEST(ExplanationTest, TypeMismatchQuotesTheSubexpression) {
  Value claims = Claims(R"({"tcb_status": "UpToDate"})");
  EXPECT_EQ(EvalSource("tcb_status < 3", claims).explanation,
            "type mismatch: string < int in tcb_status < 3");
  EXPECT_EQ(EvalSource("true && tcb_status > 3", claims).explanation,
            "type mismatch: string > int in tcb_status > 3");
}

TEST(ExplanationTest, ClaimsThatAreNotAMapAreAllAbsent) {
  EXPECT_EQ(EvalSource("!debug", Value()).explanation, "claim debug is absent");
  EXPECT_EQ(EvalSource("!debug", Value::List({})).explanation, "claim debug is absent");
  EXPECT_TRUE(EvalSource("true", Value()).pass);
}

// ---- Limits ----

TEST(LimitsTest, ExpressionSize) {
  std::string ok = "true" + std::string(1020, ' ');
  ASSERT_EQ(ok.size(), 1024u);
  EXPECT_TRUE(Expression::Compile(ok).ok());
  auto too_long = Expression::Compile(ok + " ");
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.status().message(),
              HasSubstr("expression is 1025 bytes, more than the limit of 1024"));
  EXPECT_FALSE(Expression::Compile("true || true", {.max_expression_bytes = 8}).ok());
}

TEST(LimitsTest, DeepNestingIsAnErrorNotACrash) {
  const Limits big{.max_expression_bytes = 1 << 20};
  const size_t n = 10000;
  std::vector<std::string> sources = {
      std::string(n, '(') + "true" + std::string(n, ')'),
      std::string(n, '!') + "true",
      std::string(n, '[') + std::string(n, ']') + " == []",
      "x" + std::string(n, '[').append("0").append(std::string(n, ']')) + " == 1",
      "{'a': " + std::string(n, '{') + std::string(n, '}') + "}.a == {}",
      [] {
        std::string s = "x";
        for (size_t i = 0; i < n; ++i) s += ".f";
        return s + " == 1";
      }(),
      [] {
        std::string s = "true";
        for (size_t i = 0; i < n; ++i) s += " ? true : true";
        return s;
      }(),
      [] {
        std::string s;
        for (size_t i = 0; i < n; ++i) s += "true ? true : ";
        return s + "true";
      }(),
      [] {
        std::string s;
        for (size_t i = 0; i < n; ++i) s += "size(";
        return s + "x" + std::string(n, ')') + " == 1";
      }(),
      [] {
        std::string s = "1";
        for (size_t i = 0; i < n; ++i) s += " == 1";
        return s;
      }(),
  };
  for (const std::string& source : sources) {
    auto expr = Expression::Compile(source, big);
    ASSERT_FALSE(expr.ok()) << source.substr(0, 40);
    EXPECT_THAT(expr.status().message(), HasSubstr("nests deeper than the limit of 32"))
        << source.substr(0, 40);
  }
}

TEST(LimitsTest, DepthBoundary) {
  auto nested = [](int parens) {
    return std::string(parens, '(') + "true" + std::string(parens, ')');
  };
  EXPECT_TRUE(Expression::Compile(nested(31)).ok());
  auto too_deep = Expression::Compile(nested(32));
  ASSERT_FALSE(too_deep.ok());
  EXPECT_EQ(too_deep.status().message(), "column 33: expression nests deeper than the limit of 32");
  EXPECT_TRUE(Expression::Compile("a.b.c == 1", {.max_depth = 4}).ok());
  EXPECT_FALSE(Expression::Compile("a.b.c.d == 1", {.max_depth = 4}).ok());
  EXPECT_FALSE(Expression::Compile("true", {.max_depth = 0}).ok());
}

TEST(LimitsTest, LongLogicalChainsStayShallow) {
  // 200 operands: balanced into a tree of height 9, within the default 32.
  std::string source = "a0";
  for (int i = 1; i < 200; ++i) absl::StrAppend(&source, " && a", i);
  auto expr = Expression::Compile(source, {.max_expression_bytes = 4096});
  ASSERT_TRUE(expr.ok()) << expr.status();
  ValueMap entries;
  for (int i = 0; i < 200; ++i) entries.entries[absl::StrCat("a", i)] = Value::Bool(true);
  EXPECT_TRUE((*expr)->Evaluate(Value::Map(entries)).pass);
  entries.entries["a137"] = Value::Bool(false);
  Outcome out = (*expr)->Evaluate(Value::Map(entries));
  EXPECT_FALSE(out.pass);
  EXPECT_THAT(out.explanation, HasSubstr("a137 = false"));
  EXPECT_EQ((*expr)->referenced_claims().size(), 200u);
}

TEST(LimitsTest, Steps) {
  // in: 1 step each for `in`, the claim and the list, plus one per element.
  const char* source = "tcb_status in ['UpToDate', 'SWHardeningNeeded']";
  Value claims = Claims(R"({"tcb_status": "SWHardeningNeeded"})");
  EXPECT_TRUE(EvalSource(source, claims, {.max_steps = 5}).pass);
  Outcome out = EvalSource(source, claims, {.max_steps = 4});
  EXPECT_FALSE(out.pass);
  EXPECT_EQ(out.explanation, "evaluation exceeded 4 steps");

  EXPECT_TRUE(EvalSource("true && true", claims, {.max_steps = 3}).pass);
  EXPECT_EQ(EvalSource("true && true", claims, {.max_steps = 2}).explanation,
            "evaluation exceeded 2 steps");

  // The step limit is not absorbed by && / ||.
  EXPECT_EQ(
      EvalSource("false || 'x' in ['a', 'b', 'c', 'd']", claims, {.max_steps = 6}).explanation,
      "evaluation exceeded 6 steps");

  // The default budget of 1,000 against a 1,500-element constant list.
  std::string big_list = "tee in [";
  for (int i = 0; i < 1500; ++i) absl::StrAppend(&big_list, i == 0 ? "" : ",", i);
  big_list += "]";
  out = EvalSource(big_list, Claims(R"({"tee": "snp"})"), {.max_expression_bytes = 1 << 16});
  EXPECT_FALSE(out.pass);
  EXPECT_EQ(out.explanation, "evaluation exceeded 1000 steps");
}

TEST(LimitsTest, LiteralElements) {
  Limits limits{.max_literal_elements = 4};
  EXPECT_TRUE(Expression::Compile("x in [1, 2, 3, 4]", limits).ok());
  auto list = Expression::Compile("x in [1, 2, 3, 4, 5]", limits);
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().message(), "column 19: more than 4 elements in a literal or call");
  auto map = Expression::Compile("x in {'a':1, 'b':2, 'c':3, 'd':4, 'e':5}", limits);
  ASSERT_FALSE(map.ok());
  EXPECT_THAT(map.status().message(), HasSubstr("more than 4 entries in a map literal"));

  // The default, 4,096.
  std::string source = "x in [";
  for (int i = 0; i < 4097; ++i) absl::StrAppend(&source, i == 0 ? "" : ",", "0");
  source += "]";
  auto big = Expression::Compile(source, {.max_expression_bytes = 1 << 16});
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(big.status().message(), HasSubstr("more than 4096 elements"));
}

// ---- API ----

TEST(ExpressionTest, ReferencedClaims) {
  auto expr = Expression::Compile(
      "snp.tcb.snp >= 8 && has(snp.policy) && tcb_status in ['x'] && size(images) <= 3 && "
      "snp.tcb.snp < 100 && images[0] == 'a' && labels['a.b'] == 'x' && snp[tee] == 1 && "
      "snp.product.startsWith('G') && {'k': 1}.k == 1");
  ASSERT_TRUE(expr.ok()) << expr.status();
  EXPECT_THAT((*expr)->referenced_claims(),
              ElementsAre("snp.tcb.snp", "snp.policy", "tcb_status", "images", "images[0]",
                          "labels[\"a.b\"]", "snp", "tee", "snp.product"));
  EXPECT_EQ((*expr)->source().substr(0, 11), "snp.tcb.snp");
}

TEST(ExpressionTest, CompiledOnceEvaluatedManyTimes) {
  auto expr = Expression::Compile("tcb_status in ['UpToDate', 'SWHardeningNeeded'] && !debug");
  ASSERT_TRUE(expr.ok());
  EXPECT_TRUE((*expr)->Evaluate(Claims(R"({"tcb_status":"UpToDate","debug":false})")).pass);
  EXPECT_FALSE((*expr)->Evaluate(Claims(R"({"tcb_status":"OutOfDate","debug":false})")).pass);
  EXPECT_FALSE((*expr)->Evaluate(Claims(R"({"tcb_status":"UpToDate","debug":true})")).pass);
  EXPECT_TRUE((*expr)->Evaluate(Claims(R"({"tcb_status":"UpToDate","debug":false})")).pass);
}

TEST(ExpressionTest, ConcurrentEvaluation) {
  auto expr = Expression::Compile(
      "tdx.mr_td.matches('^[0-9a-f]{96}$') && tee in ['snp', 'tdx'] && [tee][0] == 'snp'");
  ASSERT_TRUE(expr.ok());
  std::atomic<int> passes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) passes += (*expr)->Evaluate(TestClaims()).pass;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(passes.load(), 2000);
}

TEST(ExpressionTest, CommonOperatorsDoNotAllocate) {
  const char* sources[] = {
      "tcb_status in ['UpToDate', 'SWHardeningNeeded']",
      "!debug",
      "snp.tcb.snp >= 8 && has(snp.policy)",
      "size(images) <= 3",
      "snp.product.startsWith(\"Gen\")",
      "tee == 'snp' ? snp.vmpl == 0 : true",
      "tdx.mr_td.matches('^[0-9a-f]{96}$')",
      "snp['tcb'].microcode == 115 && images[1] == 'b' && 'env' in labels",
      "count == 3.0 && ratio < 2 && tee != null",
  };
  for (const char* source : sources) {
    auto expr = Expression::Compile(source);
    ASSERT_TRUE(expr.ok()) << source;
    ASSERT_TRUE((*expr)->Evaluate(TestClaims()).pass) << source;  // warm up (RE2 caches)
    g_allocations = 0;
    g_count_allocations = true;
    Outcome out = (*expr)->Evaluate(TestClaims());
    g_count_allocations = false;
    EXPECT_TRUE(out.pass) << source;
    EXPECT_EQ(g_allocations, 0) << source;
  }
}

}  // namespace
}  // namespace kbs::policy::cel
