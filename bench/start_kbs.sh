# Sourced by the bench/run_*_bench.sh scripts: start_kbs BUILD_DIR WORK_DIR
# TOML starts a KBS on loopback with the TOML configuration (ports chosen by
# the kernel), an admin key pair, one 32-byte resource bench/key/model and
# the allow-all policy; sets $pid (stopped on exit), $url and $grpc.
start_kbs() {
  local build=$1 work=$2 toml=$3
  "$build/kbs/kbsctl" admin keygen --out-dir "$work/admin" >/dev/null
  printf '%s\n' "$toml" >"$work/kbs.toml"
  "$build/kbs/kbs" --config "$work/kbs.toml" --data-dir "$work/data" \
    --admin-public-key "$work/admin/admin.pub" --ready-file "$work/ready.json" \
    >"$work/kbs.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
  [ -s "$work/ready.json" ] || { cat "$work/kbs.log" >&2; return 1; }
  url="http://127.0.0.1:$(sed -E 's/.*"http":([0-9]+).*/\1/' "$work/ready.json")"
  grpc="127.0.0.1:$(sed -E 's/.*"grpc":([0-9]+).*/\1/' "$work/ready.json")"
  head -c 32 /dev/urandom >"$work/key.bin"
  local kbsctl=("$build/kbs/kbsctl" --url "$url" --admin-key "$work/admin/admin.key")
  "${kbsctl[@]}" resource put bench/key/model --file "$work/key.bin" >/dev/null
  "${kbsctl[@]}" policy set --preset allow-all >/dev/null
}
