#!/usr/bin/env bash
# Benchmark: `offsite backup` vs `restic backup` of day 1 of the shared two-day dataset
# (../shared/bench/gen-dataset.sh), 4 machines, into a local folder repository, run
# alternately RUNS times. Prints per-run figures and medians: logical MB/s (bytes of the
# machines' data / wall seconds), CPU cores used and peak RSS.
#
#   benches/backup.sh DATASET_DIR [RUNS]       (DATASET_DIR holds day1/ and day2/)
# Needs: restic (apt-get install restic), GNU time. Work folders go to $BENCH_WORK
# (default /tmp/offsite-bench), never inside the checkout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: backup.sh DATASET_DIR [RUNS]}")
RUNS=${2:-3}
WORK=${BENCH_WORK:-/tmp/offsite-bench}
MACHINES="m1-web m2-app m3-vm m4-dev"
cd "$here/.."
# OFFSITE_BIN=path measures another build (e.g. the one before a change) instead.
if [ -z "${OFFSITE_BIN:-}" ]; then cargo build --release --quiet; fi
OFFSITE=${OFFSITE_BIN:-$PWD/target/release/offsite}
mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench RESTIC_PASSWORD=bench
bytes=$(du -sb --apparent-size "$DS/day1" | cut -f1)
echo "dataset: $DS/day1, $bytes bytes; $(nproc) cores; $(restic version | cut -d' ' -f1-2)"

# Runs CMD under GNU time; appends "wall user sys max_rss_kib" to $WORK/times.
timed() {
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/t1" "$@" >/dev/null
  read -r e u s m < "$WORK/t1"
  echo "$e $u $s $m" >> "$WORK/times"
}

run_offsite() {
  rm -rf "$WORK/offsite-repo"
  "$OFFSITE" init "$WORK/offsite-repo" >/dev/null
  : > "$WORK/times"
  for m in $MACHINES; do
    timed "$OFFSITE" backup "$WORK/offsite-repo" --machine "$m" --base "$DS/day1" "$DS/day1/$m"
  done
}

run_restic() {
  rm -rf "$WORK/restic-repo"
  restic init -q -r "$WORK/restic-repo" >/dev/null
  : > "$WORK/times"
  for m in $MACHINES; do
    (cd "$DS/day1" && timed restic -q -r "$WORK/restic-repo" backup --host "$m" "$m")
  done
}

summarize() { # tool run
  awk -v b="$bytes" -v tool="$1" -v run="$2" '{e+=$1; c+=$2+$3; if ($4>m) m=$4} END {
    printf "%s run %s: %.1f s, %.0f MB/s, %.2f cores, peak RSS %.0f MiB\n", tool, run, e, b/e/1e6, c/e, m/1024 }' "$WORK/times" \
    | tee -a "$WORK/results"
}

: > "$WORK/results"
for i in $(seq 1 "$RUNS"); do
  sync; run_offsite; summarize offsite "$i"
  sync; run_restic; summarize restic "$i"
done
echo "repository size: offsite $(du -sh "$WORK/offsite-repo" | cut -f1), restic $(du -sh "$WORK/restic-repo" | cut -f1)"
for t in offsite restic; do
  grep "^$t " "$WORK/results" | awk -v t="$t" '{print $6}' | sort -n | awk -v t="$t" '{a[NR]=$1} END {printf "median %s: %.0f MB/s\n", t, a[int((NR+1)/2)]}'
  grep "^$t " "$WORK/results" | sed 's/.*peak RSS \([0-9]*\).*/\1/' | sort -n | awk -v t="$t" '{a[NR]=$1} END {printf "median %s peak RSS: %d MiB\n", t, a[int((NR+1)/2)]}'
done
