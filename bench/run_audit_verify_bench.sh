#!/usr/bin/env bash
# The auditor's full check of a large receipt log: fills a fresh data
# directory with COUNT receipts (kbs-receipt-seed, through the real log),
# starts a KBS on it (which verifies the whole log on start), then times
# `kbsctl audit verify` (downloads every receipt, rebuilds the tree, checks
# the signed checkpoint) and `kbsctl audit export`. Issue target: verify of
# 1,000,000 receipts in under 10 s.
#
# Usage: bench/run_audit_verify_bench.sh [BUILD_DIR] [COUNT]
set -euo pipefail
build=${1:-build}
count=${2:-1000000}
for b in "$build/kbs/kbs" "$build/kbs/kbsctl" "$build/bench/kbs-receipt-seed"; do
  [ -x "$b" ] || { echo "missing $b: build first" >&2; exit 1; }
done
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$pid" ] && wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
"$build/bench/kbs-receipt-seed" --data-dir "$work/data" --count "$count"
"$build/kbs/kbsctl" admin keygen --out-dir "$work/auditor" >/dev/null
now() { date +%s.%N; }
t0=$(now)
. "$(dirname "$0")/start_kbs.sh"
start_kbs "$build" "$work" "[server]
http = \"127.0.0.1:0\"
grpc = \"127.0.0.1:0\"
[audit]
public_keys = [\"$work/auditor/admin.pub\"]
[log]
level = \"warning\""
t1=$(now)
audit=("$build/kbs/kbsctl" --url "$url" audit --auditor-key "$work/auditor/admin.key")
"${audit[@]}" log-key --out "$work/log.pub" 2>/dev/null
t2=$(now)
"${audit[@]}" verify --fresh --log-key "$work/log.pub"
t3=$(now)
"${audit[@]}" export --out "$work/log.jsonl" --log-key "$work/log.pub"
t4=$(now)
"$build/kbs/kbsctl" audit verify-proof --export "$work/log.jsonl" --log-key "$work/log.pub"
t5=$(now)
awk -v c="$count" -v s="$t0" -v a="$t1" -v b="$t2" -v v="$t3" -v e="$t4" -v x="$t5" 'BEGIN {
  printf "{\"receipts\":%d,\"kbs_start_s\":%.1f,\"audit_verify_s\":%.2f,\"export_s\":%.2f,\"verify_export_offline_s\":%.2f}\n",
    c, a - s, v - b, e - v, x - e }'
