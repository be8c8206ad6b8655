#!/usr/bin/env bash
# Installs (idempotently, without Docker) the local servers the tests talk to:
#   LocalStack (S3) in a Python 3.13 venv — or moto when no Python 3.13 exists — and Azurite.
# Re-running is cheap: each part is skipped when its marker file says it is in place.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

install_localstack() {
  local py venv="$OFFSITE_TOOLS/localstack-venv"
  [ -f "$venv/.ok-$LOCALSTACK_VERSION" ] && return 0
  py=$(find_python313) || return 1
  rm -rf "$venv"
  "$py" -m venv "$venv" || return 1
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "localstack-core[runtime]==$LOCALSTACK_VERSION" 'cbor2<6' 'pyopenssl<24.3' 'cryptography<44' service_identity || return 1
  touch "$venv/.ok-$LOCALSTACK_VERSION"
}

install_moto() {
  local venv="$OFFSITE_TOOLS/moto-venv"
  [ -f "$venv/.ok-$MOTO_VERSION" ] && return 0
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  touch "$venv/.ok-$MOTO_VERSION"
}

install_azurite() {
  local dir="$OFFSITE_TOOLS/azurite"
  [ -f "$dir/.ok-$AZURITE_VERSION" ] && return 0
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
  touch "$dir/.ok-$AZURITE_VERSION"
}

install_py_tools() {
  local venv="$OFFSITE_TOOLS/py-tools"
  [ -f "$venv/.ok-1" ] && return 0
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'boto3>=1.35,<2' 'azure-storage-blob>=12.20,<13'
  touch "$venv/.ok-1"
}

if [ "${OFFSITE_S3_SERVER:-localstack}" = localstack ] && install_localstack; then
  echo "install: LocalStack $LOCALSTACK_VERSION ready"
else
  echo "install: LocalStack unavailable (no Python 3.13 or install failed); installing moto $MOTO_VERSION" >&2
  install_moto
  echo "install: moto $MOTO_VERSION ready"
fi
install_azurite
echo "install: Azurite $AZURITE_VERSION ready"
install_py_tools
echo "install: boto3 and azure-storage-blob ready (bucket and container creation)"
