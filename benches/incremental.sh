#!/usr/bin/env bash
# Benchmark: the daily backup of day 2 over day 1 of the shared dataset
# (../shared/bench/gen-dataset.sh), offsite (parent point's unchanged files taken unread)
# side by side with restic (its parent snapshot), into local folder repositories. Each
# machine's day is moved in turn to one path ($DS/.incremental/MACHINE: a rename, so the
# files keep their inodes and change times, and day 2's unchanged files are day 1's by
# hard link), backed up with that path, and moved back (also on failure). Prints, per
# tool and machine, the bytes its process read (rchar: every read call, of the machine's
# files and of the repository) and the wall time of the day-2 backup, then the totals
# and the ratio offsite/restic.
#
#   benches/incremental.sh DATASET_DIR            (DATASET_DIR holds day1/ and day2/)
# Needs: restic (apt-get install restic), python3. OFFSITE_BIN=path measures another build;
# FORCE=1 adds an offsite --force-read run for comparison.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DS=$(realpath "${1:?usage: incremental.sh DATASET_DIR}")
WORK=${BENCH_WORK:-/tmp/offsite-bench}/incremental
MACHINES=${MACHINES:-"m1-web m2-app m3-vm m4-dev"}
cd "$here/.."
if [ -z "${OFFSITE_BIN:-}" ]; then cargo build --release --quiet; fi
O=${OFFSITE_BIN:-$PWD/target/release/offsite}
export OFFSITE_PASSWORD=bench RESTIC_PASSWORD=bench
W=$DS/.incremental
rm -rf "$WORK" && mkdir -p "$WORK" "$W"
placed=
restore_place() { if [ -n "$placed" ]; then mv "$W/${placed#*/}" "$DS/$placed"; placed=; fi; }
trap restore_place EXIT
place() { restore_place; mv "$DS/$1/$2" "$W/$2"; placed="$1/$2"; }

# Runs a command; prints "rchar seconds" (the process's read bytes, read as it exits).
measure() {
  python3 - "$@" <<'PY'
import os, subprocess, sys, time
t = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
io = dict(l.split(": ") for l in open(f"/proc/{p.pid}/io").read().splitlines())
code = p.wait()
if code not in (0, 3):
    sys.exit(f"{sys.argv[1:]}: exit {code}")
print(int(io["rchar"]), round(time.monotonic() - t, 2))
PY
}

"$O" init "$WORK/o" >/dev/null
restic init -q -r "$WORK/r" >/dev/null
echo "dataset $DS; $(nproc) cores; $("$O" --version); $(restic version | cut -d' ' -f1-2)"
printf '%-8s %-10s %14s %8s %14s %8s\n' machine tool day1-read day1-s day2-read day2-s
to=0; tr=0; tf=0; so=0; sr=0
for m in $MACHINES; do
  for day in day1 day2; do
    place "$day" "$m"
    o=$(measure "$O" backup "$WORK/o" --machine "$m" --base "$W" "$W/$m")
    r=$(cd "$W" && measure restic -q -r "$WORK/r" backup --host "$m" "$m")
    eval "o_$day=(\$o) r_$day=(\$r)"
    if [ "$day" = day2 ] && [ "${FORCE:-0}" = 1 ]; then
      f=$(measure "$O" backup "$WORK/o" --machine "$m" --base "$W" --force-read "$W/$m")
      tf=$((tf + ${f% *}))
    fi
  done
  restore_place
  printf '%-8s %-10s %14s %8s %14s %8s\n' "$m" offsite "${o_day1[0]}" "${o_day1[1]}" "${o_day2[0]}" "${o_day2[1]}"
  printf '%-8s %-10s %14s %8s %14s %8s\n' "$m" restic "${r_day1[0]}" "${r_day1[1]}" "${r_day2[0]}" "${r_day2[1]}"
  to=$((to + o_day2[0])); tr=$((tr + r_day2[0]))
  so=$(python3 -c "print($so + ${o_day2[1]})"); sr=$(python3 -c "print($sr + ${r_day2[1]})")
done
python3 -c "print(f'day 2, all machines: offsite read $to bytes in {$so:.2f} s, restic $tr bytes in {$sr:.2f} s')"
python3 -c "print(f'offsite/restic: bytes read {$to/$tr:.2f}x, time {$so/$sr:.2f}x')"
if [ "${FORCE:-0}" = 1 ]; then echo "offsite --force-read on day 2 read $tf bytes"; fi
rmdir "$W"
