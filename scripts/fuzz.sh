#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan + coverage) in
# build-fuzz/ and runs each for SECONDS (default 30), starting from its seed
# corpus in fuzz/corpus/<target> (new inputs go to a scratch copy). Exits
# non-zero if any target finds a crash.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
command -v clang++-14 >/dev/null || {
  echo "clang-14 is needed: apt-get install clang-14 libclang-rt-14-dev" >&2
  exit 1
}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKBS_FUZZ=ON -DKBS_BUILD_TESTS=OFF -DKBS_BUILD_BENCH=OFF >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz/corpus)
fi
ninja -C build-fuzz -j2 "${targets[@]}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  cp -r "fuzz/corpus/$t/." "$scratch/$t/"
  # The SNP targets also start from the real evidence, when present.
  testdata=${KBS_TESTDATA:-../shared/testdata}
  case "$t" in fuzz_snp_*) [ -d "$testdata/snp" ] && cp "$testdata/snp/"* "$scratch/$t/" ;; esac
  echo "== $t (${seconds}s)"
  if ! ASAN_OPTIONS=detect_leaks=0 "build-fuzz/fuzz/$t" -max_total_time="$seconds" -max_len=65536 \
      -rss_limit_mb=4096 -artifact_prefix="$scratch/$t-" "$scratch/$t" 2>"$scratch/$t.log"; then
    status=1
    echo "   CRASH: see below"; tail -n 40 "$scratch/$t.log"
    ls "$scratch/$t-"* 2>/dev/null && cp "$scratch/$t-"* . 2>/dev/null || true
  else
    grep -E "^#[0-9]+ *DONE|Done [0-9]+ runs" "$scratch/$t.log" | tail -n 1 || true
  fi
done
exit $status
