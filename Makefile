# knnmem: `make run` starts a server with embedded defaults; `make test` runs
# every test. Both install the Debian packages they need first.
BUILD ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo

.PHONY: all deps test-deps build run test bench format clean

all: build

deps:
	scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/server/knnmem-server --listen 127.0.0.1:50051 --data-dir ./data

# Tests also need Prometheus (promtool, a real Prometheus server), yamllint
# and openssl (test certificates).
test-deps:
	scripts/install-deps monitoring tls

test: test-deps build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

bench: build
	$(BUILD)/bench/knnmem-bench --json $(BUILD)/bench.json $(BENCH_ARGS)

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD)
