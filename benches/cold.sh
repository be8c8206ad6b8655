#!/usr/bin/env bash
# Benchmark: a target in an archive class under object lock, against a plain one, on
# the local S3 server (LocalStack emulates DEEP_ARCHIVE: reads of unrestored objects are
# refused, restores complete at once) through ../shared/bench/latproxy.py:
#   - full copy of the shared dataset's 8 points into a STANDARD target and into a
#     DEEP_ARCHIVE + governance-locked one (locked writes go through aws-sdk-s3);
#   - the retrieval plan of the largest machine's restore (HEADs only), then the
#     restore with --retrieve bulk, against a restore from the STANDARD target;
#   - objects to retrieve for the whole repository: offsite's packs vs restic's.
#
#   . localstack/shell.sh; benches/cold.sh DATASET_DIR [DELAY_MS ...]   (default: 0 20)
# Cleans its buckets (governance locks are bypassed for that) at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: cold.sh DATASET_DIR [DELAY_MS ...]}"); shift
DELAYS=${*:-0 20}
WORK=${BENCH_WORK:-/tmp/offsite-bench-cold}
MACHINES="m1-web m2-app m3-vm m4-dev"
BIG=m3-vm
. "$here/lib.sh"; bench_setup
rm -rf "$WORK"; mkdir -p "$WORK"
export OFFSITE_PASSWORD=bench OFFSITE_TARGET_PASSWORD=bench2 RESTIC_PASSWORD=bench
B=$(du -sb --apparent-size "$DS/day1" "$DS/day2" | awk '{s += $1} END {print s}')
echo "dataset: $B bytes logical; $(nproc) cores; S3 at $direct"
make_sources
cold="cold-bench-$(date +%s)"
AWS_ENDPOINT_URL=$direct "$O" target create "s3://$cold" --object-lock governance >/dev/null

cleanup() {
  "${OFFSITE_TOOLS:-$HOME/.cache/offsite-tools}/py-tools/bin/python" - "$cold" "$bucket" "$p" <<'PY'
import sys, boto3
s3 = boto3.client("s3")
cold, bucket, prefix = sys.argv[1:4]
pages = s3.get_paginator("list_object_versions").paginate(Bucket=cold)
for page in pages:
    vs = [{"Key": v["Key"], "VersionId": v["VersionId"]}
          for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    for i in range(0, len(vs), 1000):
        s3.delete_objects(Bucket=cold, Delete={"Objects": vs[i:i+1000]}, BypassGovernanceRetention=True)
s3.delete_bucket(Bucket=cold)
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    ks = [{"Key": o["Key"]} for o in page.get("Contents", [])]
    if ks:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": ks})
PY
}
p="cold-bench-$(date +%s)"
trap cleanup EXIT

timed() { # label cmd... ; prints the label and wall time, sets T
  local label=$1 wall rss; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > "$WORK/out" 2> "$WORK/err" || true
  read -r wall rss < <(tail -1 "$WORK/t"); T=$wall
  printf "%-46s %7.2f s %5.0f MiB" "$label" "$wall" "$((rss / 1024))"
}
puts() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %d PUTs" % sum(c["requests_target"]["put"] for c in r["chains"]), end="")' "$WORK/out"; }

for d in $DELAYS; do
  link_up "$d"
  echo "== ${d} ms each way"
  std="$OFFSITE_TEST_S3/$p-$d-std"; arc="s3://$cold/$d"
  AWS_ENDPOINT_URL=$direct OFFSITE_PASSWORD=bench2 "$O" init "$arc" --pack-size 64MiB >/dev/null
  AWS_ENDPOINT_URL=$direct OFFSITE_PASSWORD=bench2 "$O" target set "$arc" --data-class DEEP_ARCHIVE \
    --lock governance --lock-days 30d >/dev/null
  timed "copy full into STANDARD, ${d} ms" env AWS_ENDPOINT_URL="$endpoint" "$O" copy \
    --from "$WORK/o-src" --to "$std" --init --points all --json
  s=$T; puts; echo
  timed "copy full into DEEP_ARCHIVE + lock, ${d} ms" env AWS_ENDPOINT_URL="$endpoint" "$O" copy \
    --from "$WORK/o-src" --to "$arc" --points all --json
  puts; awk -v a="$T" -v s="$s" 'BEGIN { printf "  (%.2f× the STANDARD copy)\n", a / s }'
  # Lock upkeep after the copy: HEADs of what it did not lock itself, against the
  # objects the new points need (what a look at every one would cost).
  python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["locks"]; print("    lock upkeep: %d object(s) looked at, %d extended" % (l["looked"], l["extended"]))' "$WORK/out"
  AWS_ENDPOINT_URL=$direct OFFSITE_PASSWORD=bench2 "$O" target check-immutable "$arc" --json \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print("    objects the points need: %d; unlocked: %d" % (r["objects"], len(r["unlocked"])))'

  rm -rf "$WORK/r1" "$WORK/r2" "$WORK/r3"
  timed "restore $BIG from STANDARD, ${d} ms" env AWS_ENDPOINT_URL="$endpoint" OFFSITE_PASSWORD=bench2 \
    "$O" restore "$std" latest --machine "$BIG" --to "$WORK/r1"
  s=$T; echo
  timed "retrieval plan of $BIG (nothing asked), ${d} ms" env AWS_ENDPOINT_URL="$endpoint" OFFSITE_PASSWORD=bench2 \
    "$O" restore "$arc" latest --machine "$BIG" --to "$WORK/r2"
  echo; sed 's/^/    /' "$WORK/err" | grep -v "^    error" || true
  timed "restore $BIG with --retrieve bulk, ${d} ms" env AWS_ENDPOINT_URL="$endpoint" OFFSITE_PASSWORD=bench2 \
    "$O" restore "$arc" latest --machine "$BIG" --to "$WORK/r3" --retrieve bulk --retrieve-poll 1s
  awk -v a="$T" -v s="$s" 'BEGIN { printf "  (%.2f× the STANDARD restore)\n", a / s }'
  diff -r --no-dereference "$WORK/r1" "$WORK/r3" >/dev/null && echo "    restored trees identical"
  link_down
done

packs=$(AWS_ENDPOINT_URL=$direct OFFSITE_PASSWORD=bench2 "$O" check "s3://$cold/0" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["packs"])')
rpacks=$(restic -q -r "$WORK/r-src" list packs | wc -l)
echo "objects to retrieve for the whole repository: offsite $packs packs (64 MiB), restic $rpacks packs (its default 16 MiB): restic/offsite $(awk -v r="$rpacks" -v o="$packs" 'BEGIN { printf "%.1f", r / o }')×"
