# KILN_FUZZ: builds the libFuzzer targets of tests/fuzz. Needs clang; every
# target of the tree is then compiled with coverage instrumentation for
# libFuzzer and with ASan/UBSan (UBSan findings abort, so libFuzzer records
# them). Use its own build tree: `make fuzz` configures build-fuzz.
option(KILN_FUZZ "Build the libFuzzer targets (tests/fuzz) with ASan/UBSan; needs clang" OFF)
if(KILN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "KILN_FUZZ needs clang (-DCMAKE_CXX_COMPILER=clang++)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
  # Its targets name libraries defined later on; CMake resolves them when it
  # generates the build.
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR} ${CMAKE_BINARY_DIR}/tests/fuzz)
endif()
