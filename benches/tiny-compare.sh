#!/usr/bin/env bash
# Benchmark: one point of many tiny files (default 1,000,000 of 40-2,000 bytes in 1,000
# folders) backed up, checked with --read-data and restored by offsite, restic and (when
# installed: `cargo install rustic-rs --locked`; it reads restic's repository) rustic,
# from folder repositories; wall time and peak RSS of each.
#
#   benches/tiny-compare.sh [FILES]     OFFSITE_BIN=path measures another build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
N=${1:-1000000}
W=${BENCH_WORK:-/tmp/offsite-bench-tiny}
. "$here/lib.sh"
bench_binary
rm -rf "$W"; mkdir -p "$W"
export OFFSITE_PASSWORD=bench RESTIC_PASSWORD=bench RUSTIC_PASSWORD=bench
tiny_files "$W/data/tiny" "$N" 1000 40 2000 1
T() { /usr/bin/time -f "$1: %e s %M KiB" "${@:2}" >/dev/null 2>"$W/err" || { tail -5 "$W/err"; return 1; }; tail -1 "$W/err"; }
restic -q init -r "$W/r" >/dev/null
(cd "$W/data" && T "restic backup" restic -q -r "$W/r" backup --host tiny tiny)
"$O" init "$W/o" >/dev/null
T "offsite backup" "$O" backup "$W/o" --machine tiny --base "$W/data" "$W/data/tiny"
T "restic check --read-data" restic -r "$W/r" check --read-data
if command -v rustic >/dev/null; then T "rustic check --read-data" rustic -r "$W/r" check --read-data; fi
T "offsite check --read-data" "$O" check "$W/o" --read-data
T "restic restore" restic -r "$W/r" restore latest --target "$W/out-restic"
rm -rf "$W/out-restic"
if command -v rustic >/dev/null; then T "rustic restore" rustic -r "$W/r" restore latest "$W/out-rustic"; rm -rf "$W/out-rustic"; fi
T "offsite restore" "$O" restore "$W/o" latest --to "$W/out-offsite"
rm -rf "$W"
