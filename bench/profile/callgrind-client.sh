#!/bin/bash
# Instructions per call of one system's client (the load process), counted by
# callgrind over the measured part only (zeroed at "measuring", dumped at "measured"),
# against that system's server running natively; deterministic, so it holds on a busy
# machine. Prints the per-call total and the top functions. SERVER overrides the server
# (e.g. SERVER=intercall for the client variants).
#
#   bench/profile/callgrind-client.sh SYSTEM [OP] [CONCURRENCY] [MS]
#   e.g. bench/profile/callgrind-client.sh intercall echo 1 3000
set -euo pipefail
SYS=$1; OP=${2:-echo}; C=${3:-16}; MS=${4:-3000}
SERVER=${SERVER:-$SYS}
BIN=${BIN:-target/release/intercall-bench}
OUT=$(mktemp -d)/callgrind.out
coproc SRV { exec "$BIN" serve "$SERVER"; }
SPID=$SRV_PID
read -r line <&"${SRV[0]}"
PORT=${line#ready }
mkfifo "$OUT.fifo"
valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" load "$SYS" "$PORT" "$OP" "$C" "$MS" >"$OUT.fifo" 2>/dev/null &
VPID=$!
while read -r l; do
  case "$l" in
    measuring) callgrind_control -z "$VPID" >/dev/null 2>&1 ;;
    measured) callgrind_control -d "$VPID" >/dev/null 2>&1 ;;
    \{*) echo "$l" > "$OUT.sample" ;;
  esac
done <"$OUT.fifo"
wait "$VPID" 2>/dev/null || true
kill -TERM "$SPID" 2>/dev/null || true
wait 2>/dev/null || true
CALLS=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['calls'])" "$OUT.sample")
# The load may exit before the dump request is served: its exit dump then holds the
# measured part and the few instructions of its exit.
[ -f "$OUT.1" ] || cp "$OUT" "$OUT.1"
echo "# $SYS client, $OP at c$C: $CALLS measured calls; profile in $OUT.1"
python3 "$(dirname "$0")/callgrind_self.py" "$OUT.1" "$CALLS" "${TOP:-30}"
