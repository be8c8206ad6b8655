#!/usr/bin/env bash
# Benchmark: restore of one point of many tiny files (default 300,000 of 0-2 KiB in
# 300 folders), offsite vs restic, from a local folder repository and (with the local
# S3 server started and `. localstack/shell.sh`) from S3. Every restore goes to a new
# folder (see restore.sh on ext4 and freed inodes) and is compared (count and bytes).
#
#   benches/restore-small.sh [FILES]          OFFSITE_BIN=path measures another build
#
# DIRS (300), MIN and MAX (0 and 2048 bytes) shape the files; ROUNDS (1) restores each
# repository that many times, the two tools alternating, so neither always follows the
# other's deletes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
N=${1:-300000}
WORK=${BENCH_WORK:-/tmp/offsite-bench-small}
. "$here/lib.sh"
bench_binary
rm -rf "$WORK"; mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench RESTIC_PASSWORD=bench RUSTIC_PASSWORD=bench
tiny_files "$WORK/data/tiny" "$N" "${DIRS:-300}" "${MIN:-0}" "${MAX:-2048}" 300000
bytes=$(find "$WORK/data/tiny" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
echo "$N files, $bytes bytes; $(nproc) cores; $(restic version | cut -d' ' -f1-2)"

timed() { # label cmd...
  local label=$1 wall rss; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/stdout" 2> "$WORK/err" || { cat "$WORK/err"; return 1; }
  read -r wall rss < "$WORK/t"
  printf "%-36s %7.1f s %6.0f MiB" "$label" "$wall" "$((rss / 1024))"
}
same() {
  local a b
  a=$(cd "$1" && find . -type f -printf '%s\n' | awk '{n++; s+=$1} END {print n, s}')
  b=$(cd "$WORK/data/tiny" && find . -type f -printf '%s\n' | awk '{n++; s+=$1} END {print n, s}')
  [ "$a" = "$b" ] && echo || { echo " MISMATCH: $a vs $b"; return 1; }
}

"$O" init "$WORK/o" >/dev/null
"$O" backup "$WORK/o" --machine tiny --base "$WORK/data" "$WORK/data/tiny" >/dev/null
restic -q init -r "$WORK/r" >/dev/null
(cd "$WORK/data" && restic -q -r "$WORK/r" backup --host tiny tiny >/dev/null)
n=0
next() { n=$((n + 1)); echo "$WORK/out-$n"; }
for round in $(seq "${ROUNDS:-1}"); do
  out=$(next); timed "offsite restore, folder ($round)" "$O" restore "$WORK/o" latest --to "$out"; same "$out/tiny"
  out=$(next); timed "restic restore, folder ($round)" restic -r "$WORK/r" restore latest --target "$out"; same "$out/tiny"
  if command -v rustic >/dev/null; then  # `cargo install rustic-rs --locked`: reads restic's repository
    out=$(next); timed "rustic restore, folder ($round)" rustic -r "$WORK/r" restore latest "$out"; same "$out/tiny"
  fi
done
if [ -n "${OFFSITE_TEST_S3:-}" ]; then
  p="small-bench-$(date +%s)"; bucket=${OFFSITE_TEST_S3#s3://}
  export OFFSITE_TARGET_PASSWORD=bench
  "$O" copy --from "$WORK/o" --to "$OFFSITE_TEST_S3/$p-o" --init --points all >/dev/null
  restic -q init -r "s3:$AWS_ENDPOINT_URL/$bucket/$p-r" >/dev/null
  (cd "$WORK/data" && restic -q -r "s3:$AWS_ENDPOINT_URL/$bucket/$p-r" backup --host tiny tiny >/dev/null)
  out=$(next); timed "offsite restore, S3 (copy of it)" "$O" restore "$OFFSITE_TEST_S3/$p-o" latest --to "$out"; same "$out/tiny"
  out=$(next); timed "restic restore, S3" restic -r "s3:$AWS_ENDPOINT_URL/$bucket/$p-r" restore latest --target "$out"; same "$out/tiny"
fi
rm -rf "$WORK"
