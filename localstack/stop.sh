#!/usr/bin/env bash
# Stops the servers start.sh started (and only those).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"
for n in s3 azurite; do
  f="$OFFSITE_RUN/$n.pid"
  if [ -f "$f" ]; then
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null && for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$f"
  fi
done
rm -rf "$OFFSITE_RUN/azurite-data" "$OFFSITE_RUN/localstack-volume"
echo "stop: local servers stopped"
