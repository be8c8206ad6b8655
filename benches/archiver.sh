#!/usr/bin/env bash
# Benchmark: copies through archiver appliances. The shared dataset's 4 machines x 2
# days are backed up into a source in the local S3 server; the 8 points are copied
# (full) into an empty S3 target, and day 2's 4 points into a target holding day 1
# (incremental) — in-process (`offsite copy`), through one appliance and through two
# (`--via`). The appliances sit next to the stores (direct); the runner reaches the
# stores and the appliances through ../shared/bench/latproxy.py at DELAY ms each way
# (0: direct), as a runner far from the buckets would.
#
#   . localstack/shell.sh; benches/archiver.sh DATASET_DIR [DELAY_MS ...]   (default: 0 10)
#   MBPS=N also caps each proxied connection at N MB/s (latproxy's rate), a thin WAN.
# Prints wall time, logical MB/s, the runner's peak RSS, each appliance's peak RSS and
# the bytes that crossed the runner's network (store bytes in + out, from its report).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: archiver.sh DATASET_DIR [DELAY_MS ...]}"); shift
DELAYS=${*:-0 10}
WORK=${BENCH_WORK:-/tmp/offsite-bench-archiver}
MACHINES="m1-web m2-app m3-vm m4-dev"
. "$here/lib.sh"; bench_setup
if [ -z "${OFFSITE_BIN:-}" ]; then cargo build --release --quiet -p offsite-archiver; fi
A=${ARCHIVER_BIN:-$PWD/target/release/offsite-archiver}
rm -rf "$WORK"; mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench OFFSITE_TARGET_PASSWORD=bench2
echo bench > "$WORK/spw"; echo bench2 > "$WORK/tpw"
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'); export OFFSITE_ARCHIVER_TOKEN=$TOKEN
HASH=$(echo "$TOKEN" | "$A" hash-token)
p="arch-bench-$(date +%s)"; S3="$OFFSITE_TEST_S3/$p"
B1=$(du -sb --apparent-size "$DS/day1" | cut -f1); B2=$(du -sb --apparent-size "$DS/day2" | cut -f1)
echo "dataset: day1 $B1 bytes, day2 $B2 bytes; $(nproc) cores; delays $DELAYS ms; S3 at $direct"

# Sources: a folder with day 1 (then a copy of it) and days 1+2, uploaded to S3 as two
# prefixes of the same repository.
"$O" init "$WORK/src" >/dev/null
for m in $MACHINES; do "$O" backup "$WORK/src" --machine "$m" --base "$DS/day1" "$DS/day1/$m" >/dev/null; done
cp -a "$WORK/src" "$WORK/src-d1"
for m in $MACHINES; do "$O" backup "$WORK/src" --machine "$m" --base "$DS/day2" "$DS/day2/$m" >/dev/null; done
aws s3 cp --quiet --recursive "$WORK/src-d1" "$S3/src-d1"
aws s3 cp --quiet --recursive "$WORK/src" "$S3/src"

# An appliance on a free port next to the stores; the names it knows: the source and
# every target this run makes (not src-d1: the same repository under another prefix,
# which a task could not tell apart by id — only the untimed runs read it, in-process).
start_appliance() { # NAME -> sets url_NAME, pid_NAME
  local cfg="$WORK/$1.toml"
  { echo "listen = \"127.0.0.1:0\""; echo "task_slots = 4"; echo "tokens = [\"$HASH\"]"
    printf '[[repository]]\nname = "src"\nrole = "source"\nurl = "%s/src"\npassword_file = "%s"\n' "$S3" "$WORK/spw"
    for t in $targets; do printf '[[repository]]\nname = "%s"\nrole = "target"\nurl = "%s/%s"\npassword_file = "%s"\n' "$t" "$S3" "$t" "$WORK/tpw"; done
  } > "$cfg"
  AWS_ENDPOINT_URL=$direct "$A" serve --config "$cfg" > "$WORK/$1.out" 2> "$WORK/$1.log" &
  eval "pid_$1=$!"
  for _ in $(seq 50); do grep -q listening "$WORK/$1.out" 2>/dev/null && break; sleep 0.1; done
  eval "url_$1=$(awk '{print $NF}' "$WORK/$1.out")"
}
appliance_rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# A TCP proxy at DELAY ms in front of PORT; echoes its URL (pids collected in $proxies).
proxies=""
delayed() { # DELAY PORT
  if [ "$1" = 0 ]; then echo "http://127.0.0.1:$2"; return; fi
  local port; port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 "$LATPROXY" "$port" "$2" "$1" ${MBPS:-} >/dev/null 2>&1 & proxies="$proxies $!"
  sleep 0.5; echo "http://127.0.0.1:$port"
}

timed() { # label logical_bytes cmd...
  local label=$1 bytes=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err"; return 1; }
  read -r e m < "$WORK/t"
  local through; through=$(python3 - "$WORK/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = r["chains"]
b = sum(x["requests_source"]["bytes_in"] + x["requests_source"]["bytes_out"] + x["requests_target"]["bytes_in"] + x["requests_target"]["bytes_out"] for x in c)
g = sum(x["requests_source"]["get"] for x in c); n = sum(len(x["copied"]) for x in c)
print(f"{b/1e6:.1f} MB {g} {n}")
PY
)
  awk -v l="$label" -v b="$bytes" -v e="$e" -v m="$m" -v t="$through" \
    'BEGIN { split(t, x, " "); printf "%-40s %6.1f s %6.0f MB/s  runner %4.0f MiB  through runner %s %s, %s source GETs, %s points", l, e, b/e/1e6, m/1024, x[1], x[2], x[3], x[4] }'
}

for delay in $DELAYS; do
  targets=""
  for mode in local one two; do targets="$targets full-$mode-$delay inc-$mode-$delay"; done
  start_appliance a; start_appliance b
  s3_at=$(delayed "$delay" "$s3port")
  va=$(delayed "$delay" "${url_a##*:}"); vb=$(delayed "$delay" "${url_b##*:}")
  echo "--- runner at $delay ms${MBPS:+ and $MBPS MB/s per connection} from the stores and the appliances"
  for mode in local one two; do
    case $mode in local) via=();; one) via=(--via "$va");; two) via=(--via "$va" --via "$vb");; esac
    # Incremental: the target gets day 1 first (untimed, direct), then day 2 is timed.
    "$O" copy --from "$S3/src-d1" --to "$S3/inc-$mode-$delay" --init --points all >/dev/null
    export AWS_ENDPOINT_URL=$s3_at
    timed "full, $mode" $((B1 + B2)) "$O" copy --from "$S3/src" --to "$S3/full-$mode-$delay" --init --points all --json "${via[@]}"
    echo "  appliances a $(appliance_rss "$pid_a") KiB, b $(appliance_rss "$pid_b") KiB (peak so far)"
    timed "incremental (day 2), $mode" "$B2" "$O" copy --from "$S3/src" --to "$S3/inc-$mode-$delay" --points all --json "${via[@]}"
    echo
    export AWS_ENDPOINT_URL=$direct
  done
  echo "  appliances' peak RSS: a $(appliance_rss "$pid_a") KiB, b $(appliance_rss "$pid_b") KiB"
  # shellcheck disable=SC2154
  kill "$pid_a" "$pid_b" $proxies 2>/dev/null || true; proxies=""; wait 2>/dev/null || true
  # The local S3 server keeps every object (on disk): drop this delay's targets.
  for t in $targets; do aws s3 rm --quiet --recursive "$S3/$t"; done
done
aws s3 rm --quiet --recursive "$S3"
