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
"$build/kbs/kbsctl" admin keygen --out-dir "$work/admin" >/dev/null
cat >"$work/kbs.toml" <<TOML
[server]
http = "127.0.0.1:0"
grpc = "127.0.0.1:0"
[attestation]
max_sessions = 4000000
[snp]
collateral_dir = "$work/snp"
kds_url = ""
trusted_arks = ["$(cat "$work/snp/trusted_ark")"]
[log]
level = "warning"
TOML
"$build/kbs/kbs" --config "$work/kbs.toml" --data-dir "$work/data" \
  --admin-public-key "$work/admin/admin.pub" --ready-file "$work/ready.json" >"$work/kbs.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
[ -s "$work/ready.json" ] || { cat "$work/kbs.log" >&2; exit 1; }
url="http://127.0.0.1:$(sed -E 's/.*"http":([0-9]+).*/\1/' "$work/ready.json")"
head -c 32 /dev/urandom >"$work/key.bin"
kbsctl=("$build/kbs/kbsctl" --url "$url" --admin-key "$work/admin/admin.key")
"${kbsctl[@]}" resource put bench/key/model --file "$work/key.bin" >/dev/null
"${kbsctl[@]}" policy set --preset allow-all >/dev/null
status=0
for rate in 0 "$p99_rate"; do
  "$build/bench/kbs-bench" rcar --tee snp --snp-signer "$work/snp" --url "$url" \
    --resource bench/key/model --duration "$duration" --concurrency "$concurrency" \
    --rate "$rate" | tail -n 1 || status=1
done
exit $status
