#!/usr/bin/env bash
# Builds request_fuzzer (clang-14, libFuzzer, ASan, UBSan) and fuzzes the
# request decoding and validation of every knnmem.v1.Memory RPC for SECONDS.
#
#   tests/fuzz/run-fuzz.sh SECONDS [BUILD_DIR]
#
# BUILD_DIR defaults to build-fuzz; a relative BUILD_DIR is relative to the
# repository root. Needs `scripts/install-deps fuzz` (clang-14,
# libclang-rt-14-dev) on top of the base packages. The fuzzer runs on a copy
# of tests/fuzz/corpus in a temporary directory, so the repository's corpus
# is never modified. Exits non-zero on any crash, failed invariant, leak,
# sanitizer report or timeout, and keeps the input that caused it in
# BUILD_DIR/fuzz-artifacts/. On success the last line reads
#   fuzz: N runs in S s, no crash
set -euo pipefail

usage() {
  echo "usage: $0 SECONDS [BUILD_DIR]" >&2
  exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
seconds=$1
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || usage

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root"
build_dir=${2:-build-fuzz}

for tool in clang-14 clang++-14 cmake; do
  if ! command -v "$tool" >/dev/null; then
    echo "run-fuzz: $tool not found; run scripts/install-deps fuzz" >&2
    exit 1
  fi
done

start=$(date +%s)
CC=clang-14 CXX=clang++-14 cmake -S tests/fuzz -B "$build_dir" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target request_fuzzer
echo "run-fuzz: configure + build took $(($(date +%s) - start)) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/knnmem-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r tests/fuzz/corpus "$work/corpus"
mkdir "$work/artifacts"

export ASAN_OPTIONS="detect_leaks=1:symbolize=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The worker pool parallelises; OpenBLAS must not start threads of its own.
export OPENBLAS_NUM_THREADS=1

set +e
"$build_dir/request_fuzzer" \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
  "$work/corpus" 2>&1 | tee "$work/log"
rc=${PIPESTATUS[0]}
set -e

# Belt and braces: any sanitizer report or failed invariant fails the run
# even if the exit code did not say so.
if [ "$rc" -ne 0 ] ||
  grep -qE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|invariant failed|ALARM: working on the last Unit' "$work/log"; then
  kept="$build_dir/fuzz-artifacts"
  mkdir -p "$kept"
  if compgen -G "$work/artifacts/*" >/dev/null; then
    cp "$work/artifacts/"* "$kept/"
  fi
  cp "$work/log" "$kept/fuzz.log"
  echo "fuzz: FAILED (exit code $rc); inputs and log kept in $kept/" >&2
  exit 1
fi

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/log" | tail -1)
secs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$work/log" | grep -oE '[0-9]+ second' | grep -oE '[0-9]+' || true)
echo "run-fuzz: final coverage: ${cov:-unknown}"
echo "fuzz: ${runs:-?} runs in ${secs:-$seconds} s, no crash"
