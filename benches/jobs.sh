#!/usr/bin/env bash
# Benchmark: a backup copy job of many machines — one interval's wall time with
# max_tasks 1, 4 and 16. MACHINES machines (default 100) are backed up into a local
# folder source, each one of the dataset's machines plus a file of its own (so every
# point differs and most data is shared, as in a fleet built from a few images); the job
# copies them into the local S3 server: the first interval (a full copy of day 1), then,
# after every machine's day-2 backup, the daily interval (the increments). Direct and
# through ../shared/bench/latproxy.py at one-way delays.
#
#   . localstack/shell.sh; benches/jobs.sh DATASET_DIR [MACHINES] [DELAY_MS ...]
#   (defaults: 100 machines; 0 10). A SCALE=0.02–0.05 dataset keeps it to minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: jobs.sh DATASET_DIR [MACHINES] [DELAY_MS ...]}"); shift
N=${1:-100}; shift || true
DELAYS=${*:-0 10}
TASKS=${TASKS:-1 4 16}
WORK=${BENCH_WORK:-/tmp/offsite-bench-jobs}
. "$here/lib.sh"; bench_setup
rm -rf "$WORK"; mkdir -p "$WORK/files"
export OFFSITE_PASSWORD=bench
bases=(m1-web m2-app m3-vm m4-dev)
p="jobs-bench-$(date +%s)"
echo "dataset: $DS; $N machines; $(nproc) cores; max_tasks $TASKS; delays $DELAYS ms"

# Each machine's tree for a day: the base machine's files (hard links: read-only) and
# a file of its own that changes every day.
tree_of() { # DAY I
  local m; m=$(printf 'h%03d' "$2"); local base=${bases[$(($2 % 4))]}
  rm -rf "${WORK:?}/files/$m"; mkdir -p "$WORK/files/$m"
  cp -al "$DS/$1/$base" "$WORK/files/$m/sys"
  head -c 65536 /dev/urandom > "$WORK/files/$m/own.bin"
  echo "$m"
}
backup_all() { # DAY
  local t0; t0=$(date +%s.%N)
  for i in $(seq 0 $((N - 1))); do
    m=$(tree_of "$1" "$i")
    "$O" backup "$WORK/src" --machine "$m" --base "$WORK/files" "$WORK/files/$m" >/dev/null
  done
  echo "backed up $N machines ($1) into the source in $(echo "$(date +%s.%N) - $t0" | bc) s"
}
"$O" init "$WORK/src" >/dev/null
backup_all day1

jobs_file() { # TASKS DELAY
  cat > "$WORK/jobs-$1-$2.toml" <<EOF
[[job]]
name = "fleet"
max_tasks = $1
[[job.sources]]
url = "$WORK/src"
password_env = "OFFSITE_PASSWORD"
[job.target]
url = "$OFFSITE_TEST_S3/$p-$1-$2"
password_env = "OFFSITE_PASSWORD"
[job.retention]
keep = 7
EOF
  echo "$WORK/jobs-$1-$2.toml"
}
interval() { # CONFIG ENDPOINT -> wall seconds, and the copied count on stderr
  local t0 t1 out; t0=$(date +%s.%N)
  out=$(AWS_ENDPOINT_URL="$2" "$O" job run --config "$1" --once --json)
  t1=$(date +%s.%N)
  copied=$(echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(sum(m["points_copied"] for m in r["machines"]), r["outcome"])')
  echo "$(echo "$t1 - $t0" | bc) $copied"
}

declare -A full daily
for d in $DELAYS; do
  link_up "$d"
  for t in $TASKS; do
    full[$t-$d]=$(interval "$(jobs_file "$t" "$d")" "$endpoint")
    echo "  ${d} ms, max_tasks $t: first interval ${full[$t-$d]}"
  done
  link_down
done
backup_all day2
for d in $DELAYS; do
  link_up "$d"
  for t in $TASKS; do
    daily[$t-$d]=$(interval "$WORK/jobs-$t-$d.toml" "$endpoint")
    echo "  ${d} ms, max_tasks $t: daily interval ${daily[$t-$d]}"
  done
  link_down
done
echo
echo "| delay | max_tasks | first interval (s, points, outcome) | daily interval (s, points, outcome) |"
echo "|---|---|---|---|"
for d in $DELAYS; do for t in $TASKS; do
  echo "| $d ms | $t | ${full[$t-$d]} | ${daily[$t-$d]} |"
done; done
rm -rf "$WORK"
