#!/usr/bin/env bash
# Configures and builds everything with CMake + Ninja into build/ (ccache
# speeds up rebuilds). Usage: scripts/build.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${KBS_JOBS:-$(nproc)}
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
ninja -C build -j"$jobs" "$@"
