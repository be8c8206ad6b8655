#!/usr/bin/env bash
# Benchmark: retention and prune of a repository in the local S3 server after 30
# simulated days, against `restic forget --prune` on the same history. Each day every
# dataset machine is backed up (day 1 and day 2 of the dataset alternating, plus 2 MiB
# of new data of that day), into an offsite repository and a restic repository in the
# same bucket; then both keep the newest 7 points per machine and free the rest.
#
#   . localstack/shell.sh; benches/prune.sh DATASET_DIR [DAYS]   (default 30 days)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: prune.sh DATASET_DIR [DAYS]}"); shift
DAYS=${1:-30}
WORK=${BENCH_WORK:-/tmp/offsite-bench-prune}
MACHINES="m1-web m2-app m3-vm m4-dev"
. "$here/lib.sh"; bench_setup
rm -rf "$WORK"; mkdir -p "$WORK/files"
export OFFSITE_PASSWORD=bench RESTIC_PASSWORD=bench
p="prune-bench-$(date +%s)"
o="$OFFSITE_TEST_S3/$p-o"; r="s3:$direct/$bucket/$p-r"
echo "dataset: $DS; $DAYS days of 4 machines; $(nproc) cores; $(restic version | cut -d' ' -f1-2)"
"$O" init "$o" >/dev/null
restic -q -r "$r" init >/dev/null
for day in $(seq 1 "$DAYS"); do
  src=$([ $((day % 2)) = 1 ] && echo day1 || echo day2)
  for m in $MACHINES; do
    rm -rf "${WORK:?}/files/$m"; mkdir -p "$WORK/files/$m"
    cp -al "$DS/$src/$m" "$WORK/files/$m/sys"
    head -c 2097152 /dev/urandom > "$WORK/files/$m/daily.bin"
    "$O" backup "$o" --machine "$m" --base "$WORK/files" "$WORK/files/$m" >/dev/null
    (cd "$WORK/files" && restic -q -r "$r" backup --host "$m" "$m" >/dev/null)
  done
done
echo "backed up $DAYS days"
wall() { /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err"; return 1; }; cat "$WORK/t"; }
size() { aws --endpoint-url "$direct" s3 ls --recursive --summarize "s3://$bucket/$1/" 2>/dev/null | awk '/Total Size/ {print $3}'; }
before_o=$(size "$p-o"); before_r=$(size "$p-r")
a=$(wall "$O" forget "$o" --keep 7)
b=$(wall "$O" prune "$o" --grace-hours 0)
c=$(wall restic -r "$r" forget --keep-last 7 --group-by host --prune)
after_o=$(size "$p-o"); after_r=$(size "$p-r")
echo "offsite forget: $a (s, KiB peak); prune: $b; bucket $before_o -> $after_o bytes"
echo "restic forget --prune: $c; bucket $before_r -> $after_r bytes"
"$O" check "$o" --read-data >/dev/null && echo "offsite check --read-data: clean"
rm -rf "$WORK"
