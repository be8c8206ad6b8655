#!/usr/bin/env bash
# Benchmark: `offsite copy` vs `restic copy` on the shared two-day dataset
# (../shared/bench/gen-dataset.sh): the 8 restore points (4 machines x 2 days) copied
# into an empty repository (full), and day 2's 4 points copied into a repository that
# already holds day 1 (incremental); local folder -> local folder, and local folder ->
# the local S3 server (start it with localstack/start.sh first; skipped if absent).
#
#   benches/copy.sh DATASET_DIR [RUNS]
# Prints wall time, logical MB/s (bytes of the machines' data / wall s), CPU, peak RSS,
# bytes read from the source, objects written and requests. Work folders: $BENCH_WORK.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: copy.sh DATASET_DIR [RUNS]}")
RUNS=${2:-2}
WORK=${BENCH_WORK:-/tmp/offsite-bench-copy}
MACHINES="m1-web m2-app m3-vm m4-dev"
cd "$here/.."
# OFFSITE_BIN=path measures another build (e.g. the one before a change) instead.
if [ -z "${OFFSITE_BIN:-}" ]; then cargo build --release --quiet; fi
O=${OFFSITE_BIN:-$PWD/target/release/offsite}
rm -rf "$WORK"; mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench OFFSITE_TARGET_PASSWORD=bench2 RESTIC_PASSWORD=bench
echo bench > "$WORK/pw"
day_bytes() { du -sb --apparent-size "$DS/$1" | cut -f1; }
B1=$(day_bytes day1); B2=$(day_bytes day2)
echo "dataset: day1 $B1 bytes, day2 $B2 bytes; $(nproc) cores; $(restic version | cut -d' ' -f1-2)"

# Sources: day 1 only (…-d1) and days 1+2, for both tools.
. "$here/lib.sh"
make_sources
echo "day 2 added $changed bytes (stored, packed) to the offsite source"

timed() { # label logical_bytes cmd... ; prints a line, leaves $WORK/out
  local label=$1 bytes=$2; shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/t" "$@" > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err"; return 1; }
  read -r e u s m < "$WORK/t"
  awk -v l="$label" -v b="$bytes" -v e="$e" -v u="$u" -v s="$s" -v m="$m" \
    'BEGIN { printf "%-34s %6.1f s %6.0f MB/s %5.2f cores %5.0f MiB", l, e, b/e/1e6, (u+s)/e, m/1024 }'
}
objects() { find "$1" -type f | wc -l; }
data_objects() { find "$1/data" -type f | wc -l; }
offsite_stats() { python3 - "$WORK/out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
read = sum(c["bytes_read"] for c in r["chains"]); written = sum(c["bytes_written"] for c in r["chains"])
g = sum(c["requests_source"]["get"] for c in r["chains"]); p = sum(c["requests_target"]["put"] for c in r["chains"])
print(f"  read {read/1e6:.1f} MB, wrote {written/1e6:.1f} MB, {g} GETs, {p} PUTs", end="")
PY
}

for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/o-dst" "$WORK/r-dst"
  timed "offsite copy full (folder) run $i" $((B1 + B2)) "$O" copy --from "$WORK/o-src" --to "$WORK/o-dst" --init --points all --json
  offsite_stats; echo ", $(objects "$WORK/o-dst") objects ($(data_objects "$WORK/o-dst") packs, $(du -sb "$WORK/o-dst/data" | cut -f1) bytes)"
  restic init -q -r "$WORK/r-dst" --copy-chunker-params --from-repo "$WORK/r-src" --from-password-file "$WORK/pw" >/dev/null
  timed "restic copy full (folder) run $i" $((B1 + B2)) restic -q -r "$WORK/r-dst" copy --from-repo "$WORK/r-src" --from-password-file "$WORK/pw"
  echo "  $(objects "$WORK/r-dst") objects ($(data_objects "$WORK/r-dst") packs)"
done

# Incremental: targets that hold day 1, then copy day 2.
rm -rf "$WORK/o-inc" "$WORK/r-inc"
"$O" copy --from "$WORK/o-src-d1" --to "$WORK/o-inc" --init --points all >/dev/null
restic init -q -r "$WORK/r-inc" --copy-chunker-params --from-repo "$WORK/r-src-d1" --from-password-file "$WORK/pw" >/dev/null
restic -q -r "$WORK/r-inc" copy --from-repo "$WORK/r-src-d1" --from-password-file "$WORK/pw" >/dev/null
o_before=$(objects "$WORK/o-inc"); r_before=$(objects "$WORK/r-inc")
timed "offsite copy incremental (day 2)" "$B2" "$O" copy --from "$WORK/o-src" --to "$WORK/o-inc" --points all --json
offsite_stats; echo ", $(( $(objects "$WORK/o-inc") - o_before )) new objects"
python3 - "$WORK/out" "$changed" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); changed = int(sys.argv[2])
read = sum(c["bytes_read"] for c in r["chains"])
print(f"  incremental read / changed bytes = {read}/{changed} = {read/changed:.2f}")
PY
timed "restic copy incremental (day 2)" "$B2" restic -q -r "$WORK/r-inc" copy --from-repo "$WORK/r-src" --from-password-file "$WORK/pw"
echo "  $(( $(objects "$WORK/r-inc") - r_before )) new objects"

# Nothing new.
timed "offsite copy, nothing new" "$B2" "$O" copy --from "$WORK/o-src" --to "$WORK/o-inc" --points all --json; echo
timed "restic copy, nothing new" "$B2" restic -q -r "$WORK/r-inc" copy --from-repo "$WORK/r-src" --from-password-file "$WORK/pw"; echo

# Folder -> local S3 server.
if [ -n "${OFFSITE_TEST_S3:-}" ] && curl -s "${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}" >/dev/null 2>&1; then
  p="bench-$(date +%s)"
  timed "offsite copy full (folder -> S3)" $((B1 + B2)) "$O" copy --from "$WORK/o-src" --to "$OFFSITE_TEST_S3/$p-o" --init --points all --json
  offsite_stats; echo
  rs="s3:${AWS_ENDPOINT_URL}/${OFFSITE_TEST_S3#s3://}/$p-r"
  restic init -q -r "$rs" --copy-chunker-params --from-repo "$WORK/r-src" --from-password-file "$WORK/pw" >/dev/null
  timed "restic copy full (folder -> S3)" $((B1 + B2)) restic -q -r "$rs" copy --from-repo "$WORK/r-src" --from-password-file "$WORK/pw"; echo
  # Incremental into S3: targets holding day 1, then day 2.
  "$O" copy --from "$WORK/o-src-d1" --to "$OFFSITE_TEST_S3/$p-oi" --init --points all >/dev/null
  timed "offsite copy incremental (-> S3)" "$B2" "$O" copy --from "$WORK/o-src" --to "$OFFSITE_TEST_S3/$p-oi" --points all --json
  offsite_stats; echo
  ri="s3:${AWS_ENDPOINT_URL}/${OFFSITE_TEST_S3#s3://}/$p-ri"
  restic init -q -r "$ri" --copy-chunker-params --from-repo "$WORK/r-src-d1" --from-password-file "$WORK/pw" >/dev/null
  restic -q -r "$ri" copy --from-repo "$WORK/r-src-d1" --from-password-file "$WORK/pw" >/dev/null
  timed "restic copy incremental (-> S3)" "$B2" restic -q -r "$ri" copy --from-repo "$WORK/r-src" --from-password-file "$WORK/pw"; echo
else
  echo "(no local S3 server: folder -> S3 skipped; run localstack/start.sh and source its env)"
fi
