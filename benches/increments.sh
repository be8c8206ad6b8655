#!/usr/bin/env bash
# Benchmark: the daily job — the small increments of several machines copied into a
# bucket far away — repeated, so the figures are medians, not one noisy run. Day 2 of
# the shared dataset (four machines, ~3 % changed) into S3 targets that hold day 1, for
# `offsite copy` and `restic copy` alternately, direct and through
# ../shared/bench/latproxy.py at one-way delays.
#
#   . localstack/shell.sh; benches/increments.sh DATASET_DIR [RUNS] [DELAY_MS ...]
#   (defaults: 3 runs; 0 10 40)
# Prints each run's wall time and, per delay, the medians and restic's / offsite's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: increments.sh DATASET_DIR [RUNS] [DELAY_MS ...]}"); shift
RUNS=${1:-3}; shift || true
DELAYS=${*:-0 10 40}
WORK=${BENCH_WORK:-/tmp/offsite-bench-increments}
MACHINES="m1-web m2-app m3-vm m4-dev"
. "$here/lib.sh"; bench_setup
rm -rf "$WORK"; mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench OFFSITE_TARGET_PASSWORD=bench2 RESTIC_PASSWORD=bench
echo bench > "$WORK/pw"
p="inc-bench-$(date +%s)"
echo "dataset: $DS day 2 into day 1; $(nproc) cores; $(restic version | cut -d' ' -f1-2); $RUNS runs"

make_sources

wall() { /usr/bin/time -f "%e" -o "$WORK/t" "$@" > /dev/null 2> "$WORK/err" || { cat "$WORK/err"; return 1; }; cat "$WORK/t"; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for d in $DELAYS; do
  link_up "$d"
  ot=""; rt=""
  for i in $(seq 1 "$RUNS"); do
    # Fresh targets holding day 1, made without the delay.
    o="$OFFSITE_TEST_S3/$p-$d-$i-o"; r="$bucket/$p-$d-$i-r"
    "$O" copy --from "$WORK/o-src-d1" --to "$o" --init --points all >/dev/null 2>&1
    restic -q -r "s3:$direct/$r" init --copy-chunker-params --from-repo "$WORK/r-src-d1" --from-password-file "$WORK/pw" >/dev/null
    restic -q -r "s3:$direct/$r" copy --from-repo "$WORK/r-src-d1" --from-password-file "$WORK/pw" >/dev/null
    a=$(wall env AWS_ENDPOINT_URL="$endpoint" "$O" copy --from "$WORK/o-src" --to "$o" --points all)
    b=$(wall restic -q -r "s3:$endpoint/$r" copy --from-repo "$WORK/r-src" --from-password-file "$WORK/pw")
    echo "  ${d} ms run $i: offsite $a s, restic $b s"
    ot="$ot $a"; rt="$rt $b"
  done
  mo=$(echo "$ot" | median); mr=$(echo "$rt" | median)
  awk -v d="$d" -v o="$mo" -v r="$mr" 'BEGIN { printf "%s ms each way: offsite %.2f s, restic %.2f s (medians); restic/offsite %.2f\n", d, o, r, r/o }'
  link_down
done
rm -rf "$WORK"
