#!/usr/bin/env bash
# Full TDX RCAR flows: a KBS on loopback trusting a test Intel PKI (written by
# `kbs-bench tdx-pki`: root, PCK chain, signed TCB info, QE identity and CRLs
# in a DCAP collateral directory), and kbs-bench signing a fresh quote with
# the attestation key (ECDSA P-256) for every flow. Prints one JSON line per
# run: full speed, then paced at P99_RATE (default 1250, half the 2,500/s
# target).
#
# Usage: bench/run_tdx_bench.sh [BUILD_DIR] [DURATION_S] [CONCURRENCY]
set -euo pipefail
build=${1:-build}
duration=${2:-10}
concurrency=${3:-64}
p99_rate=${P99_RATE:-1250}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$pid" ] && wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
"$build/bench/kbs-bench" tdx-pki --out-dir "$work/tdx" >/dev/null
. "$(dirname "$0")/start_kbs.sh"
start_kbs "$build" "$work" "[server]
http = \"127.0.0.1:0\"
grpc = \"127.0.0.1:0\"
[attestation]
max_sessions = 4000000
[snp]
enabled = false
[dcap]
collateral_dir = \"$work/tdx\"
pcs_url = \"\"
trusted_roots = [\"$(cat "$work/tdx/trusted_root")\"]
[log]
level = \"warning\""
status=0
for rate in 0 "$p99_rate"; do
  "$build/bench/kbs-bench" rcar --tee tdx --tdx-signer "$work/tdx" --url "$url" \
    --resource bench/key/model --duration "$duration" --concurrency "$concurrency" \
    --rate "$rate" | tail -n 1 || status=1
done
exit $status
