# kiln: the two commands are `make demo` and `make test` (see README.md).
# Both install whatever Debian packages from deps.txt are missing, then build.
# `make asan-test` runs the same whole suite under AddressSanitizer and
# UndefinedBehaviorSanitizer (.ci/run runs it after `make test`).

BUILD_DIR   ?= build
BUILD_TYPE  ?= RelWithDebInfo
ASAN_DIR    ?= build-asan
JOBS        ?= $(shell nproc)
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEPS        := $(shell sed -e 's/\#.*//' -e '/^[[:space:]]*$$/d' deps.txt)
# ccache when it is installed (not a dependency: builds work without it).
LAUNCHER    := $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

.PHONY: all deps configure build test demo asan asan-test bench format clean

all: build

# Installs only the packages that are not installed yet; silent when all are.
deps:
	@missing=$$(for p in $(DEPS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DKILN_WERROR=ON $(LAUNCHER)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	$(SUDO) ./tests/setup-binfmt.sh
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

demo: build
	BUILD_DIR=$(BUILD_DIR) ./examples/demo.sh

# The whole suite (unit, conformance, integration, end-to-end) built with
# address and undefined-behaviour sanitizers (build type Asan) in its own tree.
# ctest sets ASAN_OPTIONS/UBSAN_OPTIONS/LSAN_OPTIONS for every test and the
# kiln processes they start (tests/sanitizers/README.md); a finding fails its
# test, and any report left in $(ASAN_DIR)/sanitizer-reports (from a process
# no test waited for) fails the target after the suite.
asan-test: deps
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Asan -DKILN_WERROR=ON $(LAUNCHER)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	$(SUDO) ./tests/setup-binfmt.sh
	rm -rf $(ASAN_DIR)/sanitizer-reports
	@rc=0; ctest --test-dir $(ASAN_DIR) --output-on-failure -j $(JOBS) || rc=$$?; \
	if [ -n "$$(ls -A $(ASAN_DIR)/sanitizer-reports 2>/dev/null)" ]; then \
	  for f in $(ASAN_DIR)/sanitizer-reports/*; do echo "== $$f"; cat "$$f"; done; \
	  echo "sanitizer reports above (in $(ASAN_DIR)/sanitizer-reports)"; rc=1; \
	fi; exit $$rc

asan: asan-test

bench: build
	./bench/run.sh $(BUILD_DIR)

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)

# libFuzzer targets (tests/fuzz) under ASan/UBSan, built with clang in their
# own tree. Each runs FUZZ_SECONDS, one after the other. fuzz_parser and
# fuzz_shell are seeded with the conformance Dockerfiles (symlinked: read in
# place), the others with their committed corpus tests/fuzz/corpus/<target>;
# new inputs go to build-fuzz/corpus-<target>, findings to
# build-fuzz/crashes-<target>/. A target with a finding does not stop the
# others; make fails at the end naming it. fuzz_layer_apply needs root (it mounts a
# private tmpfs). docs/fuzzing.md says what each target covers.
FUZZ_SECONDS    ?= 60
CONFORMANCE_DIR ?= ../shared/conformance
FUZZ_TARGETS    ?= fuzz_parser fuzz_shell fuzz_layer_apply fuzz_image fuzz_registry \
                   fuzz_buildinfo fuzz_dockerignore fuzz_reference fuzz_cli_options
FUZZ_DOCKERFILE := fuzz_parser fuzz_shell
# Per target: seeds, dictionary and longest input.
fuzz_seeds   = $(if $(filter $(FUZZ_DOCKERFILE),$1),build-fuzz/seeds,tests/fuzz/corpus/$1)
fuzz_dict    = tests/fuzz/$(if $(filter $(FUZZ_DOCKERFILE),$1),dockerfile,$(if \
               $(filter fuzz_layer_apply,$1),tar,$(if $(filter fuzz_image fuzz_buildinfo,$1),json,text))).dict
fuzz_max_len = $(if $(filter fuzz_layer_apply fuzz_image fuzz_buildinfo,$1),65536,16384)

.PHONY: fuzz
fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++ -DKILN_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	rm -rf build-fuzz/seeds && mkdir -p build-fuzz/seeds
	find $(abspath $(CONFORMANCE_DIR))/dockerfile -type f \
	  \( -name Dockerfile -o -name '*.Dockerfile' \) | while read -r f; do \
	    ln -s "$$f" "build-fuzz/seeds/$$(printf '%s' "$$f" | sha256sum | cut -c1-16)"; \
	  done
	failed=; $(foreach t,$(FUZZ_TARGETS), \
	  mkdir -p build-fuzz/corpus-$(t) build-fuzz/crashes-$(t); \
	  build-fuzz/tests/fuzz/$(t) -max_total_time=$(FUZZ_SECONDS) -max_len=$(call fuzz_max_len,$(t)) \
	    -timeout=10 -dict=$(call fuzz_dict,$(t)) -artifact_prefix=build-fuzz/crashes-$(t)/ \
	    build-fuzz/corpus-$(t) $(call fuzz_seeds,$(t)) || failed="$$failed $(t)";) \
	test -z "$$failed" || { echo "fuzz: findings in$$failed (see build-fuzz/crashes-*)"; exit 1; }
