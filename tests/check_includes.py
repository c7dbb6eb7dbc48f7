#!/usr/bin/python3
"""Fails when worker/'s modules include each other in a cycle.

    /usr/bin/python3 tests/check_includes.py [DIR]      (DIR: default worker/)

A module is a name.c and its name.h; a subsystem's internal header
name_int.h (engine_int.h, health_int.h) belongs to module name. Module A
depends on module B when a file of A has `#include "B.h"` (quoted includes
only; an include of a file that is not in DIR, such as a system header or a
file since removed, is no edge). Every cycle of that graph is printed as a
path, and the exit status is 1 if any is not in KNOWN.

KNOWN lists cycles that are being removed elsewhere: they are reported as
known, not failed. One that is gone (its files removed or no longer in a
cycle) is reported as stale so that the entry can go too.

It also fails when an internal header name_int.h is included by a file
outside its subsystem (name.c, name_*.c, name_*.h): the state a subsystem's
files share is theirs alone (STYLE.md).
"""
import re
import sys
from pathlib import Path

# No cycle is being removed at present.
KNOWN = []

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module_of(path):
    stem = path.stem
    if path.suffix == ".h" and stem.endswith("_int"):
        return stem[: -len("_int")]
    return stem


def includes(path):
    return INCLUDE_RE.findall(path.read_text(encoding="utf-8", errors="replace"))


def foreign_int_includes(root):
    """(file, header) pairs where a file includes another subsystem's _int.h."""
    bad = []
    for p in sorted(root.iterdir()):
        if p.suffix not in (".c", ".h"):
            continue
        for name in includes(p):
            if not name.endswith("_int.h") or not (root / name).is_file():
                continue
            sub = name[: -len("_int.h")]
            if p.stem != sub and not p.stem.startswith(sub + "_"):
                bad.append((p.name, name))
    return bad


def graph(root):
    """{module: set of modules it includes}."""
    files = sorted(p for p in root.iterdir() if p.suffix in (".c", ".h") and p.is_file())
    present = {p.name: p for p in files}
    edges = {}
    for p in files:
        a = module_of(p)
        edges.setdefault(a, set())
        for name in includes(p):
            target = present.get(name)
            if target is None:
                continue  # not a worker/ file (or no longer there)
            b = module_of(target)
            if b != a:
                edges[a].add(b)
    return edges


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan),
    each as a list of modules in a cycle order."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [path_through(set(c), edges) for c in comps]


def path_through(comp, edges):
    """One cycle inside comp, as a list of modules (first not repeated)."""
    start = min(comp)
    # Breadth-first back to start, staying in comp.
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v] & comp):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path))
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return sorted(comp)


def main(argv):
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "worker"
    edges = graph(root)
    found = cycles(edges)
    bad = 0
    for cyc in found:
        shown = " -> ".join(cyc + [cyc[0]])
        if set(cyc) in KNOWN:
            print(f"check_includes: known cycle (being removed): {shown}")
        else:
            print(f"check_includes: include cycle: {shown}")
            bad += 1
    for known in KNOWN:
        if not any(set(c) == known for c in found):
            print(f"check_includes: stale KNOWN entry, no longer a cycle: {sorted(known)}")
    for name, header in foreign_int_includes(root):
        print(f"check_includes: {name} includes {header}, internal to another subsystem")
        bad += 1
    if bad:
        print(f"check_includes: {bad} problem(s) among {len(edges)} modules of {root}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
