#!/usr/bin/env python3
"""Check that libpresence's floors hold (docs/ARCHITECTURE.md).

src/ has four floors, lowest first: base/, containers/, domain/ and the
registry (src/*.c). A file may include headers of its own floor and the
floors below, and call functions defined there; nothing reaches up a floor
(a callback type is how a lower floor calls back). Includes are read from
the sources; calls from the object files of the library (nm), so that
macros and inline helpers cannot hide one.

usage: check-floors.py SRC_DIR OBJECT_DIR
"""
import os
import re
import subprocess
import sys

FLOORS = ["base", "containers", "domain", "registry"]


def floor_of_path(rel):
    """The floor of a path under src/ ('domain/channel.c' -> 2)."""
    top = rel.split("/", 1)[0] if "/" in rel else "registry"
    return FLOORS.index(top) if top in FLOORS else None


def floor_of_object(name):
    """Meson names objects <dir>_<file>.c.o; the registry's have no dir."""
    for i, f in enumerate(FLOORS[:-1]):
        if name.startswith(f + "_"):
            return i
    return len(FLOORS) - 1


def check_includes(src_dir):
    errors = []
    for root, _, files in os.walk(src_dir):
        for name in files:
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src_dir)
            floor = floor_of_path(rel)
            if floor is None:
                continue  # another library (cluster/)
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                    if not m:
                        continue
                    target = floor_of_path(m.group(1))
                    if "/" not in m.group(1):
                        continue  # public or same-folder header
                    if target is not None and target > floor:
                        errors.append(f"{rel}:{n}: includes {m.group(1)}, "
                                      f"a floor above {FLOORS[floor]}")
    return errors


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", obj], check=True,
                         capture_output=True, text=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if l.strip()}
    out = subprocess.run(["nm", "-u", obj], check=True, capture_output=True,
                         text=True).stdout
    used = {l.split()[-1] for l in out.splitlines() if l.strip()}
    return defined, used


def check_calls(obj_dir):
    objs = sorted(o for o in os.listdir(obj_dir) if o.endswith(".o"))
    if not objs:
        return [f"no object files in {obj_dir}"]
    where = {}
    uses = {}
    for o in objs:
        defined, used = symbols(os.path.join(obj_dir, o))
        for s in defined:
            where[s] = o
        uses[o] = used
    errors = []
    for o in objs:
        for s in sorted(uses[o]):
            d = where.get(s)
            if d is None or d == o:
                continue
            if floor_of_object(d) > floor_of_object(o):
                errors.append(f"{o}: calls {s} of {d}, a floor above "
                              f"{FLOORS[floor_of_object(o)]}")
    return errors


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    errors = check_includes(sys.argv[1]) + check_calls(sys.argv[2])
    for e in errors:
        print(e)
    print(f"floors: {len(errors)} reach(es) up a floor")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
