# Source this (`. localstack/shell.sh`) for the environment of the servers that
# `localstack/start.sh` started for this checkout: endpoints, credentials, test buckets.
_offsite_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$_offsite_here/env.sh"
if [ -f "$OFFSITE_RUN/env" ]; then
  . "$OFFSITE_RUN/env"
else
  echo "no servers started for this checkout: run bash localstack/start.sh first" >&2
fi
