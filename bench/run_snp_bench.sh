#!/usr/bin/env bash
# Full SEV-SNP RCAR flows: a KBS on loopback trusting a test AMD chain
# (written by `kbs-bench snp-chain`), and kbs-bench generating a report
# signed with the chain's VCEK for every flow (ECDSA P-384, as the guest's
# firmware does). Prints one JSON line per run: full speed, then paced at
# P99_RATE (default 550, half the 1,100/s target).
#
# Usage: bench/run_snp_bench.sh [BUILD_DIR] [DURATION_S] [CONCURRENCY]
set -euo pipefail
build=${1:-build}
duration=${2:-10}
concurrency=${3:-32}
p99_rate=${P99_RATE:-550}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$pid" ] && wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
"$build/bench/kbs-bench" snp-chain --out-dir "$work/snp" >/dev/null
. "$(dirname "$0")/start_kbs.sh"
start_kbs "$build" "$work" "[server]
http = \"127.0.0.1:0\"
grpc = \"127.0.0.1:0\"
[attestation]
max_sessions = 4000000
[snp]
collateral_dir = \"$work/snp\"
kds_url = \"\"
trusted_arks = [\"$(cat "$work/snp/trusted_ark")\"]
[log]
level = \"warning\""
status=0
for rate in 0 "$p99_rate"; do
  "$build/bench/kbs-bench" rcar --tee snp --snp-signer "$work/snp" --url "$url" \
    --resource bench/key/model --duration "$duration" --concurrency "$concurrency" \
    --rate "$rate" | tail -n 1 || status=1
done
exit $status
