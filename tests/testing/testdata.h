// Test helper: where the shared real-hardware evidence lives. One setting,
// KBS_TESTDATA (CMake and CI set it), defaulting to ../shared/testdata.
// Tests skip with a clear message when it is absent.
#ifndef KBS_TESTS_TESTING_TESTDATA_H_
#define KBS_TESTS_TESTING_TESTDATA_H_

#include <cstdlib>
#include <string>

namespace kbs::testing {

inline std::string TestDataDir() {
  const char* dir = std::getenv("KBS_TESTDATA");
  return dir != nullptr ? dir : "../shared/testdata";
}

}  // namespace kbs::testing

#endif  // KBS_TESTS_TESTING_TESTDATA_H_
