# Sourced by the benchmarks: the offsite binary, tiny files to back up, and for those that
# talk to the local S3 server its address, a WAN-like link in front of it, and the
# two-day sources.
# Needs `here` (the benches folder) set; OFFSITE_BIN=path measures another build.

# The binary to measure ($O), built unless OFFSITE_BIN names one; from the project root.
bench_binary() {
  cd "$here/.."
  if [ -z "${OFFSITE_BIN:-}" ]; then cargo build --release --quiet; fi
  O=${OFFSITE_BIN:-$PWD/target/release/offsite}
}

# Writes N tiny files of MIN..MAX random bytes under ROOT, spread over DIRS folders
# (the same files for the same SEED): tiny_files ROOT N DIRS MIN MAX SEED
tiny_files() {
  python3 - "$@" <<'PY'
import os, random, sys
root, n, dirs, lo, hi, seed = sys.argv[1], *map(int, sys.argv[2:])
rnd = random.Random(seed)
for i in range(n):
    d = os.path.join(root, f"d{i % dirs:04}")
    if i < dirs:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:07}"), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(lo, hi)))
PY
}

# bench_binary, and the S3 server ($bucket, $direct, $s3port) from
# `. localstack/shell.sh`.
bench_setup() {
  bench_binary
  : "${OFFSITE_TEST_S3:?run localstack/start.sh and . localstack/shell.sh first}"
  bucket=${OFFSITE_TEST_S3#s3://}; direct=$AWS_ENDPOINT_URL; s3port=${direct##*:}
  LATPROXY=${LATPROXY:-$here/../../shared/bench/latproxy.py}
}

# Sets $endpoint: the server itself for 0, else ../shared/bench/latproxy.py in front of
# it delaying every chunk $1 ms each way (its pid in $proxy; link_down stops it).
link_up() {
  endpoint=$direct; proxy=
  if [ "$1" != 0 ]; then
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 "$LATPROXY" "$port" "$s3port" "$1" >/dev/null 2>&1 & proxy=$!
    sleep 1; endpoint="http://127.0.0.1:$port"
  fi
}

link_down() {
  if [ -n "$proxy" ]; then kill "$proxy"; fi
}

# Two-day sources of the shared dataset in local folders, for offsite ($WORK/o-src) and
# restic ($WORK/r-src), days 1 and 2, with copies holding day 1 only ($WORK/o-src-d1,
# $WORK/r-src-d1). Sets $changed: the bytes day 2 added (stored, packed) to offsite's.
# Needs O, DS, WORK, MACHINES and the password variables set.
make_sources() {
  "$O" init "$WORK/o-src" >/dev/null
  restic init -q -r "$WORK/r-src" >/dev/null
  for m in $MACHINES; do
    "$O" backup "$WORK/o-src" --machine "$m" --base "$DS/day1" "$DS/day1/$m" >/dev/null
    (cd "$DS/day1" && restic -q -r "$WORK/r-src" backup --host "$m" "$m" >/dev/null)
  done
  cp -a "$WORK/o-src" "$WORK/o-src-d1"; cp -a "$WORK/r-src" "$WORK/r-src-d1"
  changed=0
  local out
  for m in $MACHINES; do
    out=$("$O" backup "$WORK/o-src" --machine "$m" --base "$DS/day2" "$DS/day2/$m" --json)
    changed=$((changed + $(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["bytes_added"])')))
    (cd "$DS/day2" && restic -q -r "$WORK/r-src" backup --host "$m" "$m" >/dev/null)
  done
}
