#!/bin/bash
# The server's CPU time and minor page faults per call, from /proc/PID/stat, with the
# server pinned to core 0 and the load to core 1. Counted over the whole load run,
# warm-up included (a fifth more calls than measured, which the division allows for).
# Wall-clock based: alternate the binaries compared, and give the load average.
#
#   bench/profile/cpu-server.sh SYSTEM [OP] [CONCURRENCY] [MS]
#   e.g. BIN=old/intercall-bench bench/profile/cpu-server.sh intercall large 64 2000
set -euo pipefail
SYS=$1; OP=${2:-echo}; C=${3:-64}; MS=${4:-2000}
BIN=${BIN:-target/release/intercall-bench}
coproc SRV { exec taskset -c 0 "$BIN" serve "$SYS"; }
SPID=$SRV_PID
read -r line <&"${SRV[0]}"
PORT=${line#ready }
stat() { awk -v f="$1" '{print $f}' "/proc/$SPID/stat"; }
T0=$(( $(stat 14) + $(stat 15) )); F0=$(stat 10)
SAMPLE=$(taskset -c 1 "$BIN" load "$SYS" "$PORT" "$OP" "$C" "$MS" | tail -1)
T1=$(( $(stat 14) + $(stat 15) )); F1=$(stat 10)
kill -TERM "$SPID" 2>/dev/null || true
wait 2>/dev/null || true
python3 - "$SAMPLE" "$((T1 - T0))" "$((F1 - F0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
sample, ticks, faults, hz = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
calls = sample["calls"] * 1.2  # the warm-up is a fifth of the measured time
print(f"server_cpu_us_per_call {ticks * 1e6 / hz / calls:.1f} faults_per_call {faults / calls:.1f} "
      f"throughput {sample['calls'] / sample['seconds']:.0f}")
PY
