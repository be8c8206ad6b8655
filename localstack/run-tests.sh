#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts the local S3 server and
# Azurite (no Docker), runs every test of the workspace against memory, folders, S3 and
# Azure with cargo-nextest (a process and a deadline per test: see .config/nextest.toml),
# stops the servers, checks the deployment files offline (terraform/check.sh), and ends
# with one summary — every part passed, failed or timed out, by name — and its exit code
# as the last line. Extra arguments go to `cargo nextest run`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
. "$here/env.sh"

# cargo-nextest comes with this kind of machine; a machine without it builds it once
# (a few minutes) into ~/.cargo/bin.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "run-tests: cargo-nextest missing; installing it from crates.io"
  cargo install cargo-nextest --locked
fi

bash "$here/install.sh"
bash "$here/start.sh"
trap 'bash "$here/stop.sh" >/dev/null 2>&1 || true' EXIT
. "$OFFSITE_RUN/env"
echo "run-tests: S3 server is $OFFSITE_TEST_S3_SERVER; Azure server is Azurite $AZURITE_VERSION"

# nextest keeps its files under the workspace's own target/nextest, whatever
# CARGO_TARGET_DIR says (its store.dir).
junit=target/nextest/default/junit.xml
rm -f "$junit"
tests=0
cargo nextest run --workspace --all-targets --no-fail-fast "$@" || tests=$?
bash "$here/stop.sh"

# Terraform, Kubernetes and the example jobs files (with the binary the tests built).
deploy=0
bash terraform/check.sh || deploy=$?

echo
echo "================ summary ================"
python3 "$here/summary.py" "$junit" "$tests"
if [ "$deploy" = 0 ]; then
  echo "deployment files: passed"
else
  echo "deployment files: FAILED (terraform/check.sh exited $deploy; its output is above)"
fi
if [ "$tests" = 0 ] && [ "$deploy" = 0 ]; then
  echo "run-tests: PASSED (exit 0)"
  exit 0
fi
echo "run-tests: FAILED (exit 1)"
exit 1
