#!/usr/bin/env bash
# Starts the local S3 server (LocalStack, or moto where LocalStack is not installed) and
# Azurite on 127.0.0.1 (free ports, or S3_PORT / AZURITE_PORT), waits until both answer, creates the test bucket and container,
# and writes the environment the tests need to $OFFSITE_RUN/env (source it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
"$here/stop.sh" >/dev/null 2>&1 || true

env_file="$OFFSITE_RUN/env"

# Free ports unless S3_PORT / AZURITE_PORT say which (another checkout's servers may hold
# the usual 4566 and 10000).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
S3_PORT=${S3_PORT:-$(free_port)}
AZURITE_PORT=${AZURITE_PORT:-$(free_port)}
: > "$OFFSITE_RUN/s3.log"

if [ -f "$OFFSITE_TOOLS/localstack-venv/.ok-$LOCALSTACK_VERSION" ] && [ "${OFFSITE_S3_SERVER:-localstack}" = localstack ]; then
  s3_server="LocalStack $LOCALSTACK_VERSION"
  venv="$OFFSITE_TOOLS/localstack-venv"
  ( cd "$OFFSITE_RUN" && GATEWAY_LISTEN=127.0.0.1:$S3_PORT SERVICES=s3 EAGER_SERVICE_LOADING=1 DISABLE_EVENTS=1 \
      SKIP_SSL_CERT_DOWNLOAD=1 DNS_ADDRESS=0 LOCALSTACK_VOLUME_DIR="$OFFSITE_RUN/localstack-volume" \
      exec "$venv/bin/python" -m localstack.runtime.main ) >"$OFFSITE_RUN/s3.log" 2>&1 &
  echo $! > "$OFFSITE_RUN/s3.pid"
  health="http://127.0.0.1:$S3_PORT/_localstack/health"
else
  s3_server="moto $MOTO_VERSION"
  venv="$OFFSITE_TOOLS/moto-venv"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$OFFSITE_RUN/s3.log" 2>&1 &
  echo $! > "$OFFSITE_RUN/s3.pid"
  health="http://127.0.0.1:$S3_PORT/"
fi

mkdir -p "$OFFSITE_RUN/azurite-data"
"$OFFSITE_TOOLS/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
  --location "$OFFSITE_RUN/azurite-data" --skipApiVersionCheck --disableTelemetry --silent \
  >"$OFFSITE_RUN/azurite.log" 2>&1 &
echo $! > "$OFFSITE_RUN/azurite.pid"

wait_for() { # name url test
  local i
  for i in $(seq 1 120); do
    if out=$(curl -s --max-time 2 "$2" 2>/dev/null) && eval "$3"; then return 0; fi
    sleep 0.5
  done
  echo "start: $1 did not come up; its log:" >&2
  tail -30 "$4" >&2
  return 1
}
if [[ $s3_server == LocalStack* ]]; then
  wait_for "$s3_server" "$health" 'echo "$out" | grep -Eq "\"s3\": *\"(running|available)\""' "$OFFSITE_RUN/s3.log"
else
  wait_for "$s3_server" "$health" 'true' "$OFFSITE_RUN/s3.log"
fi
wait_for "Azurite" "http://127.0.0.1:$AZURITE_PORT/devstoreaccount1?comp=list" 'true' "$OFFSITE_RUN/azurite.log"

cat > "$env_file" <<ENV
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ALLOW_HTTP=true
export AZURE_STORAGE_USE_EMULATOR=true
export AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$AZURITE_PORT
export OFFSITE_TEST_S3=s3://offsite-test
export OFFSITE_TEST_AZURE=az://offsite-test
export OFFSITE_TEST_S3_SERVER="$s3_server"
ENV
. "$env_file"
"$OFFSITE_TOOLS/py-tools/bin/python" "$here/create_buckets.py" offsite-test
echo "start: $s3_server on 127.0.0.1:$S3_PORT, Azurite on 127.0.0.1:$AZURITE_PORT; environment in $env_file"
