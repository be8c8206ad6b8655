#!/usr/bin/env bash
# A/B benchmark of two offsite builds on the same data, alternating run by run so that
# drift of the machine (page cache, other load) hits both alike: backup of day 1 of the
# shared dataset, then a full copy of days 1+2 (8 points) folder -> folder, and the
# incremental copy of day 2. Prints per-run lines and each build's median.
#
#   benches/compare.sh BIN_A BIN_B DATASET_DIR [RUNS]
# Work folders: $BENCH_WORK (default /tmp/offsite-bench-compare).
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2"); DS=$(realpath "$3"); RUNS=${4:-5}
WORK=${BENCH_WORK:-/tmp/offsite-bench-compare}
MACHINES="m1-web m2-app m3-vm m4-dev"
rm -rf "$WORK"; mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench OFFSITE_TARGET_PASSWORD=bench2
day_bytes() { du -sb --apparent-size "$DS/$1" | cut -f1; }
B1=$(day_bytes day1); B2=$(day_bytes day2)
echo "A=$A"; echo "B=$B"; echo "dataset: day1 $B1 bytes, day2 $B2 bytes; $(nproc) cores"

timed() { # label logical_bytes cmd... ; appends "label seconds" to $WORK/times
  local label=$1 bytes=$2; shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/t" "$@" > /dev/null 2> "$WORK/err" || { cat "$WORK/err"; return 1; }
  read -r e u s m < "$WORK/t"
  awk -v l="$label" -v b="$bytes" -v e="$e" -v u="$u" -v s="$s" -v m="$m" \
    'BEGIN { printf "%-28s %6.2f s %6.0f MB/s %5.2f cores %5.0f MiB\n", l, e, b/e/1e6, (u+s)/e, m/1024 }'
  echo "$label $e" >> "$WORK/times"
}

# One source for the copies (made by B), days 1 and 2; and a day-1-only copy of it.
"$B" init "$WORK/src" >/dev/null
for m in $MACHINES; do "$B" backup "$WORK/src" --machine "$m" --base "$DS/day1" "$DS/day1/$m" >/dev/null; done
cp -a "$WORK/src" "$WORK/src-d1"
for m in $MACHINES; do "$B" backup "$WORK/src" --machine "$m" --base "$DS/day2" "$DS/day2/$m" >/dev/null; done

for i in $(seq 1 "$RUNS"); do
  for v in A B; do
    bin=${!v}
    rm -rf "$WORK/bk-$v" "$WORK/dst-$v" "$WORK/inc-$v"
    "$bin" init "$WORK/bk-$v" >/dev/null
    timed "$v backup day 1 m1-web" "$(du -sb --apparent-size "$DS/day1/m1-web" | cut -f1)" \
      "$bin" backup "$WORK/bk-$v" --machine m1-web --base "$DS/day1" "$DS/day1/m1-web"
    timed "$v copy full" $((B1 + B2)) "$bin" copy --from "$WORK/src" --to "$WORK/dst-$v" --init --points all
    "$bin" copy --from "$WORK/src-d1" --to "$WORK/inc-$v" --init --points all >/dev/null
    timed "$v copy incremental" "$B2" "$bin" copy --from "$WORK/src" --to "$WORK/inc-$v" --points all
  done
done
echo "medians (seconds):"
for label in "backup day 1 m1-web" "copy full" "copy incremental"; do
  for v in A B; do
    grep "^$v $label " "$WORK/times" | awk '{print $NF}' | sort -n | awk -v l="$v $label" \
      '{a[NR]=$1} END {printf "  %-28s %.2f\n", l, (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
  done
done
