#!/usr/bin/env bash
# Starts a KBS on loopback (temporary data directory, sample TEE enabled,
# allow-all policy, one 32-byte resource) and runs kbs-bench against it,
# client and server on the same machine:
#   1. full RCAR flows at full speed (throughput),
#   2. paced at P99_RATE flows/s (default 1000, half the 2,000/s target) for
#      the p99 latency,
# over HTTP and over gRPC. Prints one JSON line per run.
#
# Usage: bench/run_rcar_bench.sh [BUILD_DIR] [DURATION_S] [CONCURRENCY]
#   env PROTOCOLS="http grpc", P99_RATE=1000
set -euo pipefail
build=${1:-build}
duration=${2:-10}
concurrency=${3:-64}
p99_rate=${P99_RATE:-1000}
bench="$build/bench/kbs-bench"
for b in "$build/kbs/kbs" "$build/kbs/kbsctl" "$bench"; do
  [ -x "$b" ] || { echo "missing $b: build first" >&2; exit 1; }
done
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$pid" ] && wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
# Every flow leaves a 5-minute session behind; at thousands of flows per
# second the default cap (65,536) would fill, so the benchmark raises it.
. "$(dirname "$0")/start_kbs.sh"
start_kbs "$build" "$work" '[server]
http = "127.0.0.1:0"
grpc = "127.0.0.1:0"
[attestation]
allow_sample_tee = true
max_sessions = 4000000
[log]
level = "warning"'

status=0
for proto in ${PROTOCOLS:-http grpc}; do
  target=$url
  [ "$proto" = grpc ] && target=$grpc
  for rate in 0 "$p99_rate"; do
    "$bench" rcar --protocol "$proto" --url "$target" --resource bench/key/model \
      --duration "$duration" --concurrency "$concurrency" --rate "$rate" ${KBS_BENCH_ARGS:-} | tail -n 1 || status=1
  done
done
exit $status
