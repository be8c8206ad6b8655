#!/usr/bin/env bash
# Benchmark: `offsite restore` vs `restic restore` from the local S3 server, direct and
# through ../shared/bench/latproxy.py at one-way delays (a WAN in front of the bucket).
# Restores day 1 of `m1-web` (43k small files) and `m3-vm` (a 512 MiB disk image) of the
# shared dataset. offsite's repository is what a backup copy job leaves: backed up into a
# folder, then `offsite copy` into S3 (64 MiB packs); restic backs up straight into S3.
#
#   . localstack/shell.sh; benches/restore.sh DATASET_DIR [DELAY_MS ...]   (default: 0 10 40)
# Prints wall time, MB/s (bytes restored / s), peak RSS and, for offsite, GETs and bytes
# read. Every restore is compared with the dataset (file count and bytes). Work folders:
# $BENCH_WORK; OFFSITE_BIN=path measures another build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: restore.sh DATASET_DIR [DELAY_MS ...]}"); shift
DELAYS=${*:-0 10 40}
WORK=${BENCH_WORK:-/tmp/offsite-bench-restore}
MACHINES="m1-web m3-vm"
. "$here/lib.sh"; bench_setup
rm -rf "$WORK"; mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench OFFSITE_TARGET_PASSWORD=bench RESTIC_PASSWORD=bench
p="restore-bench-$(date +%s)"
echo "dataset: $DS/day1 ($MACHINES); $(nproc) cores; $(restic version | cut -d' ' -f1-2); S3 at $direct"

"$O" init "$WORK/src" >/dev/null
for m in $MACHINES; do "$O" backup "$WORK/src" --machine "$m" --base "$DS/day1" "$DS/day1/$m" >/dev/null; done
"$O" copy --from "$WORK/src" --to "$OFFSITE_TEST_S3/$p-o" --init --points all >/dev/null
restic -q -r "s3:$direct/$bucket/$p-r" init >/dev/null
for m in $MACHINES; do (cd "$DS/day1" && restic -q -r "s3:$direct/$bucket/$p-r" backup --host "$m" "$m" >/dev/null); done

timed() { # label bytes cmd... ; prints one line (without newline)
  local label=$1 bytes=$2 wall rss; shift 2
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/stdout" 2> "$WORK/err" || { cat "$WORK/err"; return 1; }
  read -r wall rss < "$WORK/t"
  awk -v l="$label" -v b="$bytes" -v e="$wall" -v m="$rss" \
    'BEGIN { printf "%-34s %7.1f s %6.0f MB/s %5.0f MiB", l, e, b/e/1e6, m/1024 }'
}
same() { # restored_dir machine: file count and bytes of files equal the dataset's
  local a b
  a=$(cd "$1" && find . -type f -printf '%s\n' | awk '{n++; s+=$1} END {print n, s}')
  b=$(cd "$DS/day1/$2" && find . -type f -printf '%s\n' | awk '{n++; s+=$1} END {print n, s}')
  [ "$a" = "$b" ] || { echo " MISMATCH: $a vs $b"; return 1; }
}

# Each restore goes to a new folder: on ext4, creating files right after deleting tens of
# thousands costs many times more (inode allocation skips recently freed inodes), which
# would punish whichever tool runs after a cleanup.
n=0
for d in $DELAYS; do
  link_up "$d"
  for m in $MACHINES; do
    bytes=$(du -sb --apparent-size "$DS/day1/$m" | cut -f1)
    n=$((n + 1)); out="$WORK/restored-$n"
    timed "offsite restore $m, ${d} ms" "$bytes" env AWS_ENDPOINT_URL="$endpoint" \
      "$O" restore "$OFFSITE_TEST_S3/$p-o" latest --machine "$m" --to "$out" --json
    python3 - "$WORK/stdout" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["requests"]
print(f"  {r['get']} GETs, {r['bytes_in'] / 1e6:.0f} MB read", end="")
PY
    same "$out/$m" "$m"; echo
    n=$((n + 1)); out="$WORK/restored-$n"
    timed "restic restore $m, ${d} ms" "$bytes" restic -q -r "s3:$endpoint/$bucket/$p-r" restore latest --host "$m" --target "$out"
    same "$out/$m" "$m"; echo
  done
  link_down
done
rm -rf "$WORK"
