#!/usr/bin/env bash
# Soak: CHAINS machines (default 200) copied by one runner through three appliances
# while one of them is restarted — SIGTERM (it drains), then started again at the same
# address — every RESTART_EVERY seconds (default 60), round robin. Bounded: it ends when
# the copy does. The source is a local folder next to the appliances; the target is in
# the local S3 server, and each appliance's writes are capped (WRITE, default 1MB/s) so
# that restarts land mid-task.
#
#   . localstack/shell.sh; benches/soak.sh [CHAINS] [RESTART_EVERY]
#
# Prints: points copied (every one, once), chains per appliance and those the runner
# copied itself, restarts, the target's `check --read-data`, packs in no index and bytes
# stored twice (prune --dry-run), and the runner's and appliances' peak RSS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CHAINS=${1:-200}
EVERY=${2:-60}
WRITE=${WRITE:-1MB/s}
WORK=${BENCH_WORK:-/tmp/offsite-bench-soak}
. "$here/lib.sh"; bench_setup
if [ -z "${ARCHIVER_BIN:-}" ]; then cargo build --release --quiet -p offsite-archiver; fi
A=${ARCHIVER_BIN:-$PWD/target/release/offsite-archiver}
rm -rf "$WORK"; mkdir -p "$WORK/files"
export OFFSITE_PASSWORD=soak OFFSITE_TARGET_PASSWORD=soak2
echo soak > "$WORK/spw"; echo soak2 > "$WORK/tpw"
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'); export OFFSITE_ARCHIVER_TOKEN=$TOKEN
HASH=$(echo "$TOKEN" | "$A" hash-token)
DST="$OFFSITE_TEST_S3/soak-$(date +%s)"

# The source: CHAINS machines of 384 KiB each (one random file and a small one).
"$O" init "$WORK/src" >/dev/null
started=$(date +%s)
for i in $(seq -w 1 "$CHAINS"); do
  m="m$i"; mkdir -p "$WORK/files/$m"
  head -c 393216 /dev/urandom > "$WORK/files/$m/data.bin"; echo "$m" > "$WORK/files/$m/name"
  "$O" backup "$WORK/src" --machine "$m" --base "$WORK/files" "$WORK/files/$m" >/dev/null
done
echo "source: $CHAINS machines backed up in $(( $(date +%s) - started )) s; $(nproc) cores; a restart every $EVERY s; appliance writes capped at $WRITE"
# The target exists before the appliances start, so they open it at once.
OFFSITE_PASSWORD=soak2 "$O" init "$DST" >/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
declare -A port pid
for n in a b c; do
  port[$n]=$(free_port)
  { echo "listen = \"127.0.0.1:${port[$n]}\""; echo "task_slots = 2"; echo "tokens = [\"$HASH\"]"
    echo 'drain_timeout = "60s"'; echo "[throttle]"; echo "write = \"$WRITE\""
    printf '[[repository]]\nname = "src"\nrole = "source"\nurl = "%s"\npassword_file = "%s"\n' "$WORK/src" "$WORK/spw"
    printf '[[repository]]\nname = "dst"\nrole = "target"\nurl = "%s"\npassword_file = "%s"\n' "$DST" "$WORK/tpw"
  } > "$WORK/$n.toml"
done
peak_a=0; peak_b=0; peak_c=0
start() { # NAME
  "$A" serve --config "$WORK/$1.toml" >> "$WORK/$1.out" 2>> "$WORK/$1.log" &
  pid[$1]=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:${port[$1]}/v1/ready" >/dev/null && break; sleep 0.1; done
}
rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
for n in a b c; do start $n; done

# The restarts, round robin, until told to stop.
restarts="$WORK/restarts"; : > "$restarts"
(
  i=0; names=(a b c)
  while sleep "$EVERY"; do
    n=${names[$((i % 3))]}; i=$((i + 1))
    p=$(cat "$WORK/$n.pid" 2>/dev/null || true)
    [ -n "$p" ] || continue
    echo "$n $(rss "$p")" >> "$restarts"
    kill -TERM "$p" 2>/dev/null || true
    while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    "$A" serve --config "$WORK/$n.toml" >> "$WORK/$n.out" 2>> "$WORK/$n.log" &
    echo $! > "$WORK/$n.pid"
  done
) & restarter=$!
for n in a b c; do echo "${pid[$n]}" > "$WORK/$n.pid"; done

via=(--via "http://127.0.0.1:${port[a]}" --via "http://127.0.0.1:${port[b]}" --via "http://127.0.0.1:${port[c]}")
set +e
/usr/bin/time -f "%e %M" -o "$WORK/t" "$O" copy --from "$WORK/src" --to "$DST" --points all \
  --tasks 6 --json "${via[@]}" > "$WORK/report.json" 2> "$WORK/runner.log"
code=$?
set -e
kill "$restarter" 2>/dev/null || true; wait "$restarter" 2>/dev/null || true
read -r secs runner_kib < "$WORK/t"
for n in a b c; do
  p=$(cat "$WORK/$n.pid"); eval "peak_$n=\$(rss $p)"
done
python3 - "$WORK/report.json" "$code" "$secs" "$runner_kib" <<'PY'
import collections, json, sys
r = json.load(open(sys.argv[1]))
chains = r["chains"]
points = sum(len(c["copied"]) for c in chains)
by = collections.Counter((c.get("appliance") or "runner").rsplit(":", 1)[-1] for c in chains if c["copied"])
lost = sum(len(c["lost_appliances"]) for c in chains)
kept = sum(l["packs_kept"] for c in chains for l in c["lost_appliances"])
fallback = [c["chain"] for c in chains if c.get("fallback")]
print(f"copy: exit {sys.argv[2]}, {float(sys.argv[3]):.1f} s, {points} points copied in {len(chains)} chains; runner peak {int(sys.argv[4])/1024:.0f} MiB")
print(f"  chains by appliance port: {dict(by)}; tasks lost to a restart: {lost} (their {kept} packs kept); copied by the runner: {len(fallback)}")
PY
restarted=$(wc -l < "$restarts")
echo "  restarts: $restarted; appliances' peak RSS (KiB) at each restart: $(tr '\n' ' ' < "$restarts"); now a $peak_a, b $peak_b, c $peak_c"
"$O" copy --from "$WORK/src" --to "$DST" --points all --json > "$WORK/again.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  a second copy copies", sum(len(c["copied"]) for c in r["chains"]), "points")' "$WORK/again.json"
OFFSITE_PASSWORD=soak2 "$O" check --read-data "$DST" > "$WORK/check.txt" 2>&1 && echo "  check --read-data: clean" || { echo "  check --read-data FAILED"; tail -5 "$WORK/check.txt"; }
OFFSITE_PASSWORD=soak2 "$O" prune --dry-run --json "$DST" > "$WORK/prune.json"
python3 - "$WORK/prune.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"  packs in no index: {p['unindexed_deleted'] + p['unindexed_left']}; bytes no point uses (stored twice): {p['unused_bytes_kept'] + p['bytes_freed']}; packs {p['packs_before']}")
PY
for n in a b c; do kill -TERM "$(cat "$WORK/$n.pid")" 2>/dev/null || true; done
wait 2>/dev/null || true
aws s3 rm --quiet --recursive "$DST" || true
