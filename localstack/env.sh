# Sourced by the other scripts: where the local test servers live and listen.
# Tools are installed outside the checkout so a fresh clone reuses them on the same machine.
OFFSITE_TOOLS=${OFFSITE_TOOLS:-$HOME/.cache/offsite-tools}
# Each checkout has its own run folder (pids, data, ports, environment), so two checkouts
# on one machine never stop or reuse each other's servers.
_offsite_checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OFFSITE_RUN=${OFFSITE_RUN:-$OFFSITE_TOOLS/run/$(printf %s "$_offsite_checkout" | sha1sum | cut -c1-12)}
LOCALSTACK_VERSION=2026.3.0
MOTO_VERSION=5.2.5
AZURITE_VERSION=3.35.0
mkdir -p "$OFFSITE_TOOLS" "$OFFSITE_RUN"

# The Python 3.13 interpreter LocalStack needs, if this machine has one.
find_python313() {
  local p
  for p in "$(command -v python3.13 2>/dev/null)" \
           "$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13; do
    if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}
