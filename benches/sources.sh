# Sourced by the copy benchmarks: two-day sources of the shared dataset in local
# folders, for offsite ($WORK/o-src) and restic ($WORK/r-src), days 1 and 2, with copies
# holding day 1 only ($WORK/o-src-d1, $WORK/r-src-d1). Needs O, DS, WORK, MACHINES and
# the password variables set.
make_sources() {
  "$O" init "$WORK/o-src" >/dev/null
  restic init -q -r "$WORK/r-src" >/dev/null
  for m in $MACHINES; do
    "$O" backup "$WORK/o-src" --machine "$m" --base "$DS/day1" "$DS/day1/$m" >/dev/null
    (cd "$DS/day1" && restic -q -r "$WORK/r-src" backup --host "$m" "$m" >/dev/null)
  done
  cp -a "$WORK/o-src" "$WORK/o-src-d1"; cp -a "$WORK/r-src" "$WORK/r-src-d1"
  for m in $MACHINES; do
    "$O" backup "$WORK/o-src" --machine "$m" --base "$DS/day2" "$DS/day2/$m" >/dev/null
    (cd "$DS/day2" && restic -q -r "$WORK/r-src" backup --host "$m" "$m" >/dev/null)
  done
}
