#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test with
# ctest: unit tests, end-to-end tests against the real binaries, the
# jwcrypto interoperability test and the fuzz seed corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh runtime build test
scripts/build.sh
cd build
ctest --output-on-failure -j"${KBS_TEST_JOBS:-2}" --timeout 900
