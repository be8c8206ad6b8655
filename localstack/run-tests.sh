#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts the local S3 server and
# Azurite (no Docker), runs every test against memory, folders, S3 and Azure, stops them.
# Extra arguments go to `cargo test`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
. "$here/env.sh"
bash "$here/install.sh"
bash "$here/start.sh"
trap 'bash "$here/stop.sh"' EXIT
. "$OFFSITE_RUN/env"
echo "run-tests: S3 server is $OFFSITE_TEST_S3_SERVER; Azure server is Azurite $AZURITE_VERSION"
# --no-fail-fast: a failing test binary never hides the results of the others.
cargo test --workspace --all-targets --no-fail-fast "$@"
