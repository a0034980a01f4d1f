#!/usr/bin/env python3
"""The report of two alternating sets of presence-bench runs (A and B).

    bench-pair-report.py OUT_DIR ROUNDS LABEL_A LABEL_B

Reads OUT_DIR/a-<r>.out and OUT_DIR/b-<r>.out (r = 1..ROUNDS), fails
unless every run printed the same checksum line, and prints per phase the
median rate of each side, the ratio of the medians B/A, and the median and
range of the ratios of runs taken side by side (round r's B over round r's
A), then the median peak RSS. Used by scripts/bench-ab.sh (two builds) and
scripts/bench-modes.sh (two option sets of one build).
"""
import re
import statistics
import sys

out, rounds, label_a, label_b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
phases = ["join", "stats", "query", "refresh", "leave"]
rates = {s: {p: [] for p in phases} for s in "ab"}
rss = {s: [] for s in "ab"}
checks = set()
for s in "ab":
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{s}-{r}.out"):
            m = re.match(r"phase=(\w+) .* ops_per_s=(\d+)", line)
            if m:
                rates[s][m.group(1)].append(int(m.group(2)))
            elif line.startswith("checksum"):
                checks.add(line.strip())
            elif line.startswith("peak_rss_kb="):
                rss[s].append(int(line.split("=")[1]))
if len(checks) != 1:
    sys.exit(f"checksums differ: {checks}")
print(f"A = {label_a}, B = {label_b}; medians of {rounds} alternating runs")
print("| phase | A ops/s | B ops/s | B/A | B/A by round: median (range) |")
print("| --- | ---: | ---: | ---: | ---: |")
for p in phases:
    a, b = statistics.median(rates["a"][p]), statistics.median(rates["b"][p])
    pairs = [y / x for x, y in zip(rates["a"][p], rates["b"][p])]
    print(f"| {p} | {a:.0f} | {b:.0f} | {b / a:.3f} | "
          f"{statistics.median(pairs):.3f} ({min(pairs):.3f}-{max(pairs):.3f}) |")
a, b = statistics.median(rss["a"]), statistics.median(rss["b"])
print(f"| peak RSS KiB | {a:.0f} | {b:.0f} | {b / a:.3f} | |")
