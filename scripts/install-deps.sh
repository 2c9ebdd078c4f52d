#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, only those missing.
# Groups: runtime, build, test, bazel, fuzz (default: runtime build).
# Run as root (or with sudo available).
set -euo pipefail
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(runtime build)

declare -A pkgs
pkgs[runtime]="ca-certificates libgrpc++1.51 libprotobuf32 libssl3 libsqlite3-0 libtomlplusplus3 libyaml-cpp0.7 libre2-9 zlib1g libp11-kit0 libtcmalloc-minimal4 libboost-context1.74.0"
pkgs[build]="build-essential g++ cmake ninja-build pkg-config ccache libgrpc++-dev zlib1g-dev \
protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev libssl-dev libsqlite3-dev \
libboost-dev libboost-context-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev googletest libgmock-dev \
libgtest-dev libbenchmark-dev libyaml-cpp-dev libre2-dev libp11-kit-dev libgoogle-perftools-dev"
pkgs[test]="python3 python3-jwcrypto curl softhsm2"
pkgs[bazel]="bazel-bootstrap"
pkgs[fuzz]="clang-14 libclang-rt-14-dev"

wanted=()
for g in "${groups[@]}"; do
  [ -n "${pkgs[$g]:-}" ] || { echo "unknown group $g" >&2; exit 2; }
  for p in ${pkgs[$g]}; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      wanted+=("$p")
    fi
  done
done
[ ${#wanted[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${wanted[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
