#!/usr/bin/env python3
"""Self cost per function, per call, from a callgrind output file (name compression
understood), and the heap allocations per call by caller.

    callgrind_self.py FILE CALLS [TOP]
"""
import collections
import re
import sys


def main():
    path, calls = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    names, cost, allocs = {}, collections.Counter(), collections.Counter()
    fn = cfn = None
    after_calls = False

    def name(token):
        m = re.match(r"\((\d+)\)(?: (.*))?", token)
        if not m:
            return token
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), token)

    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("fn="):
            fn = name(line[3:])
        elif line.startswith("cfn="):
            cfn = name(line[4:])
        elif line.startswith("calls="):
            after_calls = True
            if cfn and "__rust_alloc" in cfn:
                allocs[fn] += int(line[6:].split()[0])
        elif line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            if len(parts) < 2:
                continue
            if after_calls:  # the inclusive cost of the call above, not self cost
                after_calls = False
                continue
            cost[fn] += int(parts[1])
    total = sum(cost.values())
    print(f"instructions per call: {total // calls}")
    for function, c in cost.most_common(top):
        print(f"{c // calls:8d} {100 * c / total:5.1f}%  {function[:150]}")
    print(f"heap allocations per call: {sum(allocs.values()) / calls:.1f}")
    for function, n in allocs.most_common(top):
        print(f"{n / calls:8.2f}  {function[:150]}")


if __name__ == "__main__":
    main()
