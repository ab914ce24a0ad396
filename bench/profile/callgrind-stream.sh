#!/bin/bash
# Instructions of one stream's reader and of its server, counted by callgrind: the
# reader (`stream-load`) under callgrind against a native server, then the server under
# callgrind against a native reader. One stream of COUNT small (or SIZE=large: 64 KiB) items after a warm-up of
# COUNT/10 on the same connection; process start included. Deterministic (within ~0.01%
# between runs), so it holds on a busy machine.
#
#   bench/profile/callgrind-stream.sh SYSTEM [COUNT]
#   e.g. bench/profile/callgrind-stream.sh intercall 100000   # and: ... tonic 100000
#   SIZE=large bench/profile/callgrind-stream.sh intercall 2000   # 64 KiB items
set -euo pipefail
SYS=$1; COUNT=${2:-100000}; SIZE=${SIZE:-small}
BIN=${BIN:-target/release/intercall-bench}
OUT=$(mktemp -d)
serve() { # the server, under "$@" (nothing, or valgrind): stdin held open by fd 7
  mkfifo "$OUT/stdin"
  "$@" "$BIN" serve "$SYS" < "$OUT/stdin" > "$OUT/port" 2>/dev/null &
  SERVER=$!
  exec 7>"$OUT/stdin"
  until grep -q ready "$OUT/port" 2>/dev/null; do sleep 0.1; done
  PORT=$(awk '/ready/{print $2}' "$OUT/port")
}
stop() { exec 7>&-; wait "$SERVER" || true; rm -f "$OUT/stdin" "$OUT/port"; }
serve
valgrind --tool=callgrind --callgrind-out-file="$OUT/reader.cg" "$BIN" stream-load "$SYS" "$PORT" "$SIZE" "$COUNT" >/dev/null 2>&1
stop
serve valgrind --tool=callgrind --callgrind-out-file="$OUT/server.cg"
"$BIN" stream-load "$SYS" "$PORT" "$SIZE" "$COUNT" >/dev/null
stop
ITEMS=$((COUNT + COUNT / 10))
for side in reader server; do
  TOTAL=$(awk '/^summary:/{print $2}' "$OUT/$side.cg")
  echo "# $SYS $side: $TOTAL instructions, $((TOTAL / ITEMS)) per item ($ITEMS items); profile in $OUT/$side.cg"
done
