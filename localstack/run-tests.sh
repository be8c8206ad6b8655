#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts the local S3 server and
# Azurite (no Docker), runs every test against memory, folders, S3 and Azure, stops them;
# then checks the deployment files offline (terraform/check.sh). Extra arguments go to
# `cargo test`.
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
status=0
cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
# Terraform, Kubernetes and the example jobs files (with the binary the tests built).
bash terraform/check.sh || status=$?
exit $status
