# knnmem: `make run` starts a server with embedded defaults; `make test` runs
# every test. Both install the Debian packages they need first.
BUILD ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
comma := ,

.PHONY: all deps test-deps build run check test test-python python-venv python-stubs bench-python test-asan test-tsan fuzz bench format clean

all: build

deps:
	scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/server/knnmem-server --listen 127.0.0.1:50051 --data-dir ./data

# Tests also need Prometheus (promtool, a real Prometheus server), yamllint,
# openssl (test certificates), clang (fuzzing), clang-format, and libtorch
# and gnuplot (the model), and numpy (tests read .npy files; the Python client).
test-deps:
	scripts/install-deps monitoring tls fuzz model lint python

# Checks that keep the architecture true: no include crosses a layer upward
# (docs/ARCHITECTURE.md), every C++ file is formatted, and the lock
# annotations hold (clang's -Wthread-safety over the server and client).
check: test-deps deps
	scripts/check-layers
	scripts/check-format
	scripts/check-thread-safety

# The checks; everything; the Python client; then the core (unit), crash and
# fault tests again under ASan+UBSan; then 60 s of fuzzing.
test: test-deps check build
	ctest --test-dir $(BUILD) --output-on-failure --timeout 600 -j$(JOBS)
	$(MAKE) test-python
	$(MAKE) test-asan SANITIZER_TESTS='-L "unit|crash|faults"' \
	  SANITIZER_TARGETS='unit_tests crash_oracle faults_tests knnmem-server knnmem'
	$(MAKE) fuzz FUZZ_SECONDS=60

# The Python client (client/python), installed as its README shows: a venv
# over Debian's python3 packages and an offline pip install. Its tests start
# $(KNNMEM_SERVER) and run $(KNNMEM_CLI) and $(KNNMEM_BENCH) (bench/bench.py
# for one short round); each has a timeout (pyproject.toml).
PYTHON ?= /usr/bin/python3
PY_VENV ?= $(BUILD)/python-venv
KNNMEM_SERVER ?= $(BUILD)/server/knnmem-server
KNNMEM_CLI ?= $(BUILD)/client/knnmem
KNNMEM_BENCH ?= $(BUILD)/bench/knnmem-bench
python-venv: build
	scripts/install-deps python tls
	rm -rf $(PY_VENV)
	$(PYTHON) -m venv --system-site-packages $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet --no-index --no-build-isolation ./client/python

test-python: python-venv
	KNNMEM_SERVER=$(abspath $(KNNMEM_SERVER)) KNNMEM_CLI=$(abspath $(KNNMEM_CLI)) \
	KNNMEM_BENCH=$(abspath $(KNNMEM_BENCH)) \
	  $(PY_VENV)/bin/python -m pytest client/python/tests

# Regenerates the Python client's checked-in stubs from proto/.
python-stubs:
	$(PYTHON) client/python/generate_stubs.py

# Sanitizer builds live in their own build dirs. SANITIZER_TESTS selects
# tests (ctest arguments); SANITIZER_TARGETS, what to build (default: all).
# deploy_check is left out: it checks the release binaries' runtime libraries.
SANITIZER_TESTS ?=
SANITIZER_TARGETS ?=
sanitizer_build = cmake -S . -B $(1) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DKNNMEM_SANITIZE=$(2) && \
	cmake --build $(1) -j$(JOBS) $(if $(SANITIZER_TARGETS),--target $(SANITIZER_TARGETS))

# libFuzzer (clang-14, ASan+UBSan) over request decoding and validation of
# every RPC, from the seed corpus in tests/fuzz/corpus.
FUZZ_SECONDS ?= 60
fuzz: test-deps
	tests/fuzz/run-fuzz.sh $(FUZZ_SECONDS) build-fuzz

test-asan: test-deps deps
	$(call sanitizer_build,build-asan,address$(comma)undefined)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build-asan --output-on-failure --timeout 600 -j$(JOBS) -E deploy_check $(SANITIZER_TESTS)

test-tsan: test-deps deps
	$(call sanitizer_build,build-tsan,thread)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --test-dir build-tsan --output-on-failure --timeout 600 -j$(JOBS) -E deploy_check $(SANITIZER_TESTS)

bench: build
	$(BUILD)/bench/knnmem-bench --json $(BUILD)/bench.json $(BENCH_ARGS)
	$(MAKE) bench-python

# The Python client against the C++ client on one server (its own child):
# Append throughput and a 32-stream DecodeStep, the two clients' calls in
# turns, and their ratios (client/python/bench/bench.py).
bench-python: python-venv
	KNNMEM_SERVER=$(abspath $(KNNMEM_SERVER)) \
	KNNMEM_BENCH=$(abspath $(KNNMEM_BENCH)) \
	  $(PY_VENV)/bin/python client/python/bench/bench.py --json $(BUILD)/bench-python.json

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD)

# The container image (Dockerfile), built with docker when an engine answers,
# else with podman (installed and set up by scripts/container-engine); the
# debian:12 base images are made locally (debootstrap) when no registry
# provides them. IMAGE is the tag deploy/compose.yaml runs.
IMAGE ?= knnmem:local
.PHONY: image test-image base-images
base-images:
	scripts/base-images

image:
	scripts/build-image $(IMAGE)

# Builds the image, then runs it (tests/deploy/test-image.sh) and the three
# shards of deploy/compose.yaml (tests/deploy/test-compose.sh), driven by the
# host's CLI: only that target is built here.
test-image: image
	scripts/install-deps image-test
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD) -j$(JOBS) --target knnmem
	KNNMEM_IMAGE=$(IMAGE) KNNMEM_CLI=$(BUILD)/client/knnmem tests/deploy/test-image.sh
	KNNMEM_CLI=$(BUILD)/client/knnmem tests/deploy/test-compose.sh
