#!/bin/bash
# CPU time, context switches and page faults of each side of one stream (`perf stat`,
# whole processes): the server (`serve`) pinned to core 0, the reader (`stream-load`:
# one stream of COUNT small items, or SIZE=large 64 KiB ones, after a warm-up of
# COUNT/10) pinned to core 1. Wall-clock based: alternate the binaries compared, give
# the load average.
#
#   bench/profile/cpu-stream.sh SYSTEM [COUNT]
#   e.g. BIN=old/intercall-bench bench/profile/cpu-stream.sh intercall 1000000
#        SIZE=large bench/profile/cpu-stream.sh tonic 10000
set -euo pipefail
SYS=$1; COUNT=${2:-1000000}; SIZE=${SIZE:-small}
BIN=${BIN:-target/release/intercall-bench}
OUT=$(mktemp -d)
EVENTS=task-clock,context-switches,page-faults
mkfifo "$OUT/stdin"
taskset -c 0 perf stat -x, -e "$EVENTS" -o "$OUT/server.stat" "$BIN" serve "$SYS" < "$OUT/stdin" > "$OUT/port" 2>/dev/null &
SERVER=$!
exec 7>"$OUT/stdin"
until grep -q ready "$OUT/port" 2>/dev/null; do sleep 0.1; done
PORT=$(awk '/ready/{print $2}' "$OUT/port")
RATE=$(taskset -c 1 perf stat -x, -e "$EVENTS" -o "$OUT/reader.stat" "$BIN" stream-load "$SYS" "$PORT" "$SIZE" "$COUNT")
exec 7>&-
wait "$SERVER" || true
side() { awk -F, '/task-clock/{printf "%.0f ms", $1} /context-switches/{printf ", %s context switches", $1} /page-faults/{printf ", %s page faults", $1}' "$OUT/$1.stat"; }
echo "# $SYS $SIZE x $COUNT: $(printf %.0f "$RATE") items/s; reader $(side reader); server $(side server)"
rm -rf "$OUT"
