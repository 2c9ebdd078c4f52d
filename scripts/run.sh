#!/usr/bin/env bash
# Installs what is missing, builds, and starts the KBS on its embedded
# default: 127.0.0.1:8080 (HTTP) and 127.0.0.1:50051 (gRPC), SQLite and keys
# under ./kbs-data (created on first start). An admin key pair is created in
# ./kbs-admin so the admin commands work at once. Extra arguments go to kbs,
# e.g. `scripts/run.sh --allow-sample-tee` for a demo without TEE hardware.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh runtime build
scripts/build.sh kbs kbsctl
if [ ! -f kbs-admin/admin.pub ]; then
  build/kbs/kbsctl admin keygen --out-dir kbs-admin >/dev/null
fi
cat <<MSG

Try it (in another terminal, from $(pwd)):
  export KBSCTL="build/kbs/kbsctl --url http://127.0.0.1:8080 --admin-key kbs-admin/admin.key"
  echo -n "my model key" > /tmp/model.key
  \$KBSCTL resource put models/llama/key --file /tmp/model.key
  \$KBSCTL resource list
  \$KBSCTL policy set --preset allow-all
  curl -s http://127.0.0.1:8080/.well-known/jwks.json
  # A whole attestation without TEE hardware needs the sample TEE:
  #   scripts/run.sh --allow-sample-tee
  build/kbs/kbsctl attest --url http://127.0.0.1:8080 --tee sample --get models/llama/key --out -

MSG
exec build/kbs/kbs --admin-public-key kbs-admin/admin.pub "$@"
