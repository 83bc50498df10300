// Sanitizer reports of the programs end-to-end tests start. In an Asan build
// ctest sets KILN_SANITIZER_REPORTS (tests/sanitizers/sanitizers.cmake); Run()
// then makes the child write its AddressSanitizer/UBSan/LeakSanitizer report
// into that folder instead of the stderr the test captures, and after the
// child exits fails the calling test with the report, so a finding is never
// hidden by a test that expected the program to fail. Without the variable
// (every other build) both functions do nothing.
// Thread-safety: plain functions; the gtest failure they add goes to the
// calling thread's test.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace kiln::testing {

// Appends log_path=<reports>/<program's name> to ASAN_OPTIONS and
// UBSAN_OPTIONS among `env` ("NAME=value" entries, the child's environment).
void RouteSanitizerReports(const std::string& program, std::vector<std::string>* env);

// The reports the child `pid` of `program` wrote (empty when none). Each is
// also added to the current test as a failure naming the program.
std::string CollectSanitizerReports(const std::string& program, pid_t pid);

}  // namespace kiln::testing
