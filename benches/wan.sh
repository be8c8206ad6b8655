#!/usr/bin/env bash
# Benchmark: copy into a bucket far away, and checking it there. `offsite copy` vs
# `restic copy` from a local folder into the local S3 server, direct and through
# ../shared/bench/latproxy.py at one-way delays: the 8 points of the shared dataset into
# an empty target (full), and day 2's four small increments into a target holding day 1
# (incremental: per-chain round trips dominate); then `check --read-data` of the full
# target through the same link, for both tools.
#
#   . localstack/shell.sh; benches/wan.sh DATASET_DIR [DELAY_MS ...]   (default: 0 10 40)
# Prints wall time, logical MB/s, peak RSS and, for offsite, GETs, PUTs and bytes read;
# the last column of each offsite line is restic's time / offsite's. Work folders:
# $BENCH_WORK; OFFSITE_BIN=path measures another build; OFFSITE_ARGS adds copy flags.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: wan.sh DATASET_DIR [DELAY_MS ...]}"); shift
DELAYS=${*:-0 10 40}
WORK=${BENCH_WORK:-/tmp/offsite-bench-wan}
MACHINES="m1-web m2-app m3-vm m4-dev"
. "$here/lib.sh"; bench_setup
rm -rf "$WORK"; mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench OFFSITE_TARGET_PASSWORD=bench2 RESTIC_PASSWORD=bench
echo bench > "$WORK/pw"
B1=$(du -sb --apparent-size "$DS/day1" | cut -f1); B2=$(du -sb --apparent-size "$DS/day2" | cut -f1)
p="wan-bench-$(date +%s)"
echo "dataset: day1 $B1 bytes, day2 $B2 bytes; $(nproc) cores; $(restic version | cut -d' ' -f1-2); S3 at $direct"

make_sources

T=0
timed() { # label bytes cmd... ; prints one line without newline, sets T to the wall time
  local label=$1 bytes=$2 wall rss; shift 2
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err"; return 1; }
  read -r wall rss < "$WORK/t"; T=$wall
  awk -v l="$label" -v b="$bytes" -v e="$wall" -v m="$rss" \
    'BEGIN { printf "%-40s %7.1f s %6.0f MB/s %5.0f MiB", l, e, b/e/1e6, m/1024 }'
}
copy_stats() { python3 - "$WORK/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["chains"]
bad = [x["chain"] for x in c if x["status"] not in ("copied", "up-to-date")]
g = sum(x["requests_source"]["get"] for x in c); p = sum(x["requests_target"]["put"] for x in c)
read = sum(x["bytes_read"] for x in c)
print(f"  {g} GETs, {p} PUTs, read {read/1e6:.0f} MB" + (f" FAILED {bad}" if bad else ""), end="")
PY
}
ratio() { awk -v r="$1" -v o="$2" 'BEGIN { printf "  restic/offsite %.2f\n", r/o }'; }

for d in $DELAYS; do
  link_up "$d"
  echo "== ${d} ms each way"
  o="$OFFSITE_TEST_S3/$p-$d-o"; r="s3:$endpoint/$bucket/$p-$d-r"
  # Full: 8 points into an empty target.
  timed "offsite copy full, ${d} ms" $((B1 + B2)) env AWS_ENDPOINT_URL="$endpoint" \
    "$O" copy --from "$WORK/o-src" --to "$o" --init --points all --json ${OFFSITE_ARGS:-}
  ot=$T; copy_stats; echo
  restic -q -r "$r" init --copy-chunker-params --from-repo "$WORK/r-src" --from-password-file "$WORK/pw" >/dev/null
  timed "restic copy full, ${d} ms" $((B1 + B2)) restic -q -r "$r" copy --from-repo "$WORK/r-src" --from-password-file "$WORK/pw"
  ratio "$T" "$ot"
  # Incremental: day 2 into targets holding day 1 (set up without the delay).
  oi="$OFFSITE_TEST_S3/$p-$d-oi"; ri="$bucket/$p-$d-ri"
  "$O" copy --from "$WORK/o-src-d1" --to "$oi" --init --points all >/dev/null
  restic -q -r "s3:$direct/$ri" init --copy-chunker-params --from-repo "$WORK/r-src-d1" --from-password-file "$WORK/pw" >/dev/null
  restic -q -r "s3:$direct/$ri" copy --from-repo "$WORK/r-src-d1" --from-password-file "$WORK/pw" >/dev/null
  timed "offsite copy incremental, ${d} ms" "$B2" env AWS_ENDPOINT_URL="$endpoint" \
    "$O" copy --from "$WORK/o-src" --to "$oi" --points all --json ${OFFSITE_ARGS:-}
  ot=$T; copy_stats; echo
  timed "restic copy incremental, ${d} ms" "$B2" restic -q -r "s3:$endpoint/$ri" copy --from-repo "$WORK/r-src" --from-password-file "$WORK/pw"
  ratio "$T" "$ot"
  # check --read-data of the full targets.
  timed "offsite check --read-data, ${d} ms" $((B1 + B2)) env AWS_ENDPOINT_URL="$endpoint" OFFSITE_PASSWORD=bench2 \
    "$O" check "$o" --read-data --json
  ot=$T; python3 - "$WORK/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  {r['packs']} packs, read {r['bytes_read'] / 1e6:.0f} MB" + (" ERRORS" if r["errors"] else ""))
PY
  timed "restic check --read-data, ${d} ms" $((B1 + B2)) restic -q -r "$r" check --read-data
  ratio "$T" "$ot"
  link_down
done
rm -rf "$WORK"
