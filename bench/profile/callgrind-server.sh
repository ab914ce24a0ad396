#!/bin/bash
# Instructions per call of one system's server, counted by callgrind over the load's
# measured part only (zeroed at "measuring", dumped at "measured"); deterministic, so
# it holds on a busy machine. Prints the per-call total and the top functions.
#
#   bench/profile/callgrind-server.sh SYSTEM [OP] [CONCURRENCY] [MS]
#   e.g. bench/profile/callgrind-server.sh intercall echo 16 3000
set -euo pipefail
SYS=$1; OP=${2:-echo}; C=${3:-16}; MS=${4:-3000}
BIN=${BIN:-target/release/intercall-bench}
OUT=$(mktemp -d)/callgrind.out
coproc SRV { exec valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" serve "$SYS" 2>/dev/null; }
VPID=$SRV_PID
read -r line <&"${SRV[0]}"
PORT=${line#ready }
"$BIN" load "$SYS" "$PORT" "$OP" "$C" "$MS" | while read -r l; do
  case "$l" in
    measuring) callgrind_control -z "$VPID" >/dev/null 2>&1 ;;
    measured) callgrind_control -d "$VPID" >/dev/null 2>&1 ;;
    \{*) echo "$l" > "$OUT.sample" ;;
  esac
done
kill -TERM "$VPID" 2>/dev/null || true
wait 2>/dev/null || true
CALLS=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['calls'])" "$OUT.sample")
echo "# $SYS server, $OP at c$C: $CALLS measured calls; profile in $OUT.1"
python3 "$(dirname "$0")/callgrind_self.py" "$OUT.1" "$CALLS" 30
