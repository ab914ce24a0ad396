#!/bin/bash
# A perf profile (cpu-clock, kernel included) of one system's server, pinned to core 0,
# under load from core 1, recorded over the load's measured part only.
#
#   bench/profile/perf-server.sh SYSTEM [OP] [CONCURRENCY] [MS]
#   then: perf report -i <data> --no-children --sort sym -g none
set -euo pipefail
SYS=$1; OP=${2:-echo}; C=${3:-64}; MS=${4:-4000}
BIN=${BIN:-target/release/intercall-bench}
DIR=$(mktemp -d)
mkfifo "$DIR/in"
taskset -c 0 "$BIN" serve "$SYS" < "$DIR/in" > "$DIR/out" 2>/dev/null &
SPID=$!
exec 7>"$DIR/in"
for _ in $(seq 100); do grep -q ready "$DIR/out" 2>/dev/null && break; sleep 0.1; done
PORT=$(awk '{print $2}' "$DIR/out")
taskset -c 1 "$BIN" load "$SYS" "$PORT" "$OP" "$C" "$MS" | while read -r l; do
  case "$l" in
    measuring) perf record -F 4000 -g -p "$SPID" -o "$DIR/perf.data" 2>/dev/null & echo $! > "$DIR/perf.pid" ;;
    measured) kill -INT "$(cat "$DIR/perf.pid")" ;;
    \{*) echo "$l" > "$DIR/sample" ;;
  esac
done
sleep 1
exec 7>&-
wait 2>/dev/null || true
echo "# $SYS server, $OP at c$C: $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['calls'])" "$DIR/sample") calls"
perf report -i "$DIR/perf.data" --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
echo "# data: $DIR/perf.data"
