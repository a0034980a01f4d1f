#!/usr/bin/env python3
"""Summarise a scripts/bench-compare.sh or bench-flatness.sh run (stdlib
only).

    bench-report.py OUT_DIR ROUNDS
    bench-report.py --flat OUT_DIR ROUNDS C...

OUT_DIR holds c-<r>.out / sio-<r>.out (the WORKLOAD.md lines) and
c-<r>.time / sio-<r>.time (/usr/bin/time -v) for r = 1..ROUNDS. Exits 1
unless every run printed the same checksum line. Prints, as Markdown, the
median rate of each phase for both, their ratio against the issue 13 target,
and the peak memory per membership (time -v maximum resident set / (C*K)).
"""
import re
import statistics
import sys

PHASES = ["join", "stats", "query", "refresh", "leave"]
# Issue 4: the ratio libpresence / Socket.IO adapter each phase must reach.
TARGET_RATIO = {"join": 4.8, "stats": 1700, "query": 16, "refresh": 4.8,
                "leave": 4.4}
TARGET_BYTES = 100  # peak memory per membership, at most
NAMES = {"c": "libpresence", "sio": "Socket.IO adapter"}
# Issue 13: each phase against the memory floor (floor.c) of the same run:
# (floor depth, ratio at most).
FLOOR_GOAL = {"stats": (2, 3), "join": (3, 4), "refresh": (3, 4),
              "leave": (3, 4), "query": (2, 3)}


def parse_floor(path):
    """{reads: ns_per_op} from floor.c's lines."""
    got = {}
    with open(path) as f:
        for line in f:
            m = re.search(r"floor reads=(\d+) ns_per_op=([\d.]+)", line)
            if m:
                got[int(m[1])] = float(m[2])
    if 2 not in got or 3 not in got:
        sys.exit(f"{path}: no floor lines for 2 and 3 reads")
    return got


def parse_out(path):
    rates, ops, checksum, peak = {}, {}, None, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            m = re.fullmatch(r"phase=(\w+) ops=(\d+) seconds=([\d.]+) "
                             r"ops_per_s=(\d+)", line)
            if m:
                rates[m[1]] = int(m[4])
                ops[m[1]] = int(m[2])
            elif line.startswith("checksum "):
                checksum = line
            elif line.startswith("peak_rss_kb="):
                peak = int(line.split("=", 1)[1])
    missing = [p for p in PHASES if p not in rates]
    if missing or checksum is None or peak is None:
        sys.exit(f"{path}: incomplete output (missing {missing or 'lines'})")
    return rates, ops, checksum, peak


def parse_time(path):
    with open(path) as f:
        for line in f:
            if "Maximum resident set size (kbytes):" in line:
                return int(line.rsplit(":", 1)[1])
    sys.exit(f"{path}: no maximum resident set size")


def human(rate):
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M/s"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k/s"
    return f"{rate:.0f} /s"


def ns_per_goal_unit(phase, rate, ops, listed, per_leave):
    """ns per operation as the floor goal counts it: query per member
    listed, leave per membership."""
    ns = 1e9 / rate if rate else float("inf")
    if phase == "query":
        return ns * ops["query"] / listed, "member listed"
    if phase == "leave":
        return ns / per_leave, "membership"
    return ns, "operation"


def flat_main(out, rounds, sizes):
    """--flat: each phase's ratio to the floor at every size (c-<C>-<r>.out,
    floor-<C>-<r>.out), and the spread of those ratios (issue 13: within
    1.5x from 10^5 to 10^7 memberships)."""
    ratios = {phase: [] for phase in PHASES}
    rows = []
    for c in sizes:
        runs = [parse_out(f"{out}/c-{c}-{r}.out") for r in range(1, rounds + 1)]
        floors = [parse_floor(f"{out}/floor-{c}-{r}.out")
                  for r in range(1, rounds + 1)]
        fmed = {d: statistics.median(f[d] for f in floors) for d in (2, 3)}
        rates0, ops, checksum, _ = runs[0]
        listed = int(re.search(r"listed=(\d+)", checksum)[1])
        per_leave = ops["join"] / ops["leave"]
        cells = []
        for phase in PHASES:
            rate = statistics.median(run[0][phase] for run in runs)
            ns, _ = ns_per_goal_unit(phase, rate, ops, listed, per_leave)
            depth = FLOOR_GOAL[phase][0]
            ratio = ns / fmed[depth]
            ratios[phase].append(ratio)
            cells.append(f"{ns:.0f} ns = {ratio:.1f}x F{depth}")
        rows.append((ops["join"], fmed, cells))
    print("| memberships | F2 | F3 | " + " | ".join(PHASES) + " |")
    print("| ---: | ---: | ---: |" + " ---: |" * len(PHASES))
    for memberships, fmed, cells in rows:
        print(f"| {memberships} | {fmed[2]:.1f} ns | {fmed[3]:.1f} ns | "
              + " | ".join(cells) + " |")
    print("| spread of the ratio (max/min) | | | " + " | ".join(
        f"{max(r) / min(r):.2f}x" for r in ratios.values()) + " |")
    print()
    print(f"Medians of {rounds} rounds; query per member listed, leave per "
          f"membership; goal: every spread <= 1.5x.")
    print(f"raw outputs: {out}")


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "--flat":
        flat_main(sys.argv[2], int(sys.argv[3]), [int(c) for c in sys.argv[4:]])
        return
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, rounds = sys.argv[1], int(sys.argv[2])
    runs = {who: [] for who in NAMES}
    for who in NAMES:
        for r in range(1, rounds + 1):
            rates, ops, checksum, peak = parse_out(f"{out}/{who}-{r}.out")
            maxrss = parse_time(f"{out}/{who}-{r}.time")
            runs[who].append(dict(rates=rates, ops=ops, checksum=checksum,
                                  peak=peak, maxrss=maxrss))

    checksums = {(who, i + 1): run["checksum"]
                 for who in NAMES for i, run in enumerate(runs[who])}
    if len(set(checksums.values())) != 1:
        print("CHECKSUMS DIFFER:", file=sys.stderr)
        for (who, r), line in sorted(checksums.items()):
            print(f"  {NAMES[who]} round {r}: {line}", file=sys.stderr)
        sys.exit(1)
    memberships = runs["c"][0]["ops"]["join"]  # C*K

    print()
    print(f"checksums equal in all {2 * rounds} runs: "
          f"{next(iter(checksums.values()))}")
    print()
    print(f"| phase | libpresence | Socket.IO adapter | ratio | "
          f"target (issue 13) | |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for phase in PHASES:
        c = statistics.median(run["rates"][phase] for run in runs["c"])
        s = statistics.median(run["rates"][phase] for run in runs["sio"])
        ratio = c / s if s else float("inf")
        target = TARGET_RATIO[phase]
        verdict = ("met" if ratio >= target
                   else f"missed, {target / ratio:.1f}x short")
        label = "leave (clients)" if phase == "leave" else phase
        print(f"| {label} | {human(c)} | {human(s)} | {ratio:.2f}x | "
              f">= {target:g}x | {verdict} |")

    per = {}
    for who in NAMES:
        kb = statistics.median(run["maxrss"] for run in runs[who])
        per[who] = kb * 1024 / memberships if memberships else 0.0
    verdict = ("met" if per["c"] <= TARGET_BYTES
               else f"missed by {per['c'] - TARGET_BYTES:.0f} B "
                    f"({per['c'] / TARGET_BYTES:.2f}x)")
    print(f"| peak memory per membership | {per['c']:.0f} B | "
          f"{per['sio']:.0f} B | {per['sio'] / per['c']:.2f}x less | "
          f"<= {TARGET_BYTES} B | {verdict} |")
    # Against the floor: ns per operation as the goal counts it (query per
    # member listed, leave per membership).
    floors = [parse_floor(f"{out}/floor-{r}.out") for r in range(1, rounds + 1)]
    fmed = {d: statistics.median(f[d] for f in floors) for d in (2, 3)}
    first = runs["c"][0]
    listed = int(re.search(r"listed=(\d+)", first["checksum"])[1])
    per_leave = memberships / first["ops"]["leave"]  # K
    print()
    print(f"Against the memory floor of the same run (floor.c: F2 = "
          f"{fmed[2]:.1f} ns, F3 = {fmed[3]:.1f} ns, medians):")
    print()
    print("| phase | libpresence ns | per | floor | ratio | goal (issue 13) | |")
    print("| --- | ---: | --- | ---: | ---: | ---: | --- |")
    for phase in PHASES:
        rate = statistics.median(run["rates"][phase] for run in runs["c"])
        ns, per = ns_per_goal_unit(phase, rate, first["ops"], listed,
                                   per_leave)
        depth, goal = FLOOR_GOAL[phase]
        ratio = ns / fmed[depth]
        verdict = "met" if ratio <= goal else f"missed, {ratio / goal:.1f}x over"
        print(f"| {phase} | {ns:.0f} | {per} | F{depth} {fmed[depth]:.1f} | "
              f"{ratio:.1f}x | <= {goal}x | {verdict} |")

    print()
    print(f"Medians of {rounds} alternating rounds, C*K = {memberships} "
          f"memberships; memory is /usr/bin/time -v maximum resident set / "
          f"(C*K), the bench's own name tables included.")
    print()
    print("Every round (ops/s):")
    print()
    print("| phase | " + " | ".join(f"{NAMES[w]} #{r + 1}" for w in NAMES
                                   for r in range(rounds)) + " |")
    print("| --- |" + " ---: |" * (2 * rounds))
    for phase in PHASES:
        print(f"| {phase} | " + " | ".join(
            str(runs[w][r]["rates"][phase]) for w in NAMES
            for r in range(rounds)) + " |")
    print("| max RSS KiB | " + " | ".join(
        str(runs[w][r]["maxrss"]) for w in NAMES for r in range(rounds))
        + " |")
    print()
    print(f"raw outputs: {out}")


if __name__ == "__main__":
    main()
