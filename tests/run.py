#!/usr/bin/python3
"""promptyard's test runner (`make test` calls it).

    /usr/bin/python3 tests/run.py [FILTER...]

1. Every unit test binary test_* in $PROMPTYARD_UNIT (default build/san/tests).
   Each prints "PASS name" / "FAIL name: ..." lines and "N passed, N failed";
   a crash, a timeout, or a non-zero exit without FAIL lines counts as one
   failure of that binary.
2. Every libFuzzer target fuzz_* in $PROMPTYARD_FUZZ (default build/fuzz):
   each runs every input of its checked-in corpus, then fuzzes for
   $PROMPTYARD_FUZZ_SECONDS (default 3) on a copy of it (tests/lib/fuzzing.py);
   a crash, a leak or a broken check counts as one failure of that target,
   a clean run as one pass.
3. Every tests/integration/test_*.py in its own subprocess
   (tests/lib/runfile.py), each test_* function in file order.

A FILTER (substring) selects unit binaries, fuzz targets and integration files by name,
and integration tests by function name. Failure output (FAIL lines,
tracebacks, sanitizer reports, the logs a test attached) is shown. The last
line is "N passed, N failed", totals over everything; exit status 1 if
anything failed.

Time limits (seconds, environment): PROMPTYARD_TEST_BUDGET_S for the whole
run (default 3600; what is left when it runs out counts as failed),
PROMPTYARD_UNIT_TIMEOUT_S per unit binary (default 300). Each integration
test has its own alarm (runfile.py). Processes a test file leaves behind
are killed (they are found by the PROMPTYARD_TEST_RUN token in their
environment).
"""
import ast
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.lib import fuzzing  # noqa: E402
PASS_RE = re.compile(r"^PASS (\S+)")
FAIL_RE = re.compile(r"^FAIL (\S+?)(:|\s|$)")
SUMMARY_RE = re.compile(r"^(\d+) passed, (\d+) failed\s*$")
UNIT_OUTPUT_TAIL = 60

SANITIZER_DEFAULTS = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def out(*a):
    print(*a, flush=True)


def run_streaming(argv, env, timeout, on_line):
    """Runs argv (stdout+stderr merged) calling on_line(line) per line, until it
    exits or timeout s pass (then its process group is killed).
    Returns (exit code or None on timeout, elapsed s)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                         cwd=REPO, start_new_session=True, stdin=subprocess.DEVNULL)
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = t0 + timeout
    timed_out = False
    fd = p.stdout.fileno()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(min(left, 0.2)):
                # A grandchild that inherited the pipe keeps it open after the
                # child exits: stop once the child is gone and the pipe is quiet.
                if p.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                on_line(line.decode("utf-8", "replace"))
        if buf:
            on_line(buf.decode("utf-8", "replace"))
    finally:
        sel.close()
        if timed_out:
            try:
                os.killpg(p.pid, signal.SIGTERM)   # runfile cleans up on SIGTERM
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
        p.stdout.close()
    return (None if timed_out else rc), time.monotonic() - t0


def sweep_strays(token):
    """SIGKILLs every process whose environment carries this run's token."""
    needle = f"PROMPTYARD_TEST_RUN={token}".encode() + b"\0"
    killed = []
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if needle in env:
            try:
                name = (d / "comm").read_text().strip()
                os.kill(int(d.name), signal.SIGKILL)
                killed.append(f"{name}[{d.name}]")
            except OSError:
                pass
    return killed


def test_names(path):
    """Names of the module-level test_* functions of a test file (without importing it)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError):
        return None  # let runfile report it
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


class Totals:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def fail(self, what):
        self.failed += 1
        self.failures.append(what)


def run_unit(path, env, timeout, totals):
    passes, fails, other = [], [], []

    def on_line(line):
        m = PASS_RE.match(line)
        if m:
            passes.append(m.group(1))
            out(f"  {line}")
            return
        m = FAIL_RE.match(line)
        if m:
            fails.append(m.group(1))
            out(f"  {line}")
            return
        if not SUMMARY_RE.match(line):
            other.append(line)

    out(f"== unit {path.name}")
    rc, elapsed = run_streaming([str(path)], env, timeout, on_line)
    totals.passed += len(passes)
    for name in fails:
        totals.failures.append(f"{path.name}: {name}")
    totals.failed += len(fails)
    broken = None
    if rc is None:
        broken = f"timed out after {timeout} s"
    elif rc < 0:
        broken = f"killed by signal {-rc}"
    elif rc != 0 and not fails:
        broken = f"exited with status {rc} without a FAIL line"
    if broken:
        out(f"FAIL {path.name}: {broken}")
        totals.fail(f"{path.name}: {broken}")
    if broken or fails:
        if other:
            out(f"---- output of {path.name} (last {UNIT_OUTPUT_TAIL} lines)")
            for line in other[-UNIT_OUTPUT_TAIL:]:
                out(line)
            out("----")
    out(f"   {path.name}: {len(passes)} passed, {len(fails) + (1 if broken else 0)} failed "
        f"({elapsed:.1f} s)")


def run_fuzz(path, env, seconds, totals):
    out(f"== fuzz {path.name}")
    # A directory of its own: `make fuzz`'s build/fuzz/run keeps its
    # crashing inputs while the tests run.
    res = fuzzing.run_target(path, seconds, env=env, work_root=path.parent / "test-run")
    if res.ok:
        totals.passed += 1
        out(f"  PASS {path.name} ({res.executions:,} executions, "
            f"{res.corpus_in} corpus inputs)")
        return
    out(f"FAIL {path.name}: {res.problem}")
    totals.fail(f"{path.name}: {res.problem}")
    out(f"---- output of {path.name} (last {UNIT_OUTPUT_TAIL} lines of {res.log})")
    for line in fuzzing.log_tail(res, UNIT_OUTPUT_TAIL):
        out(line)
    out("----")
    for c in res.crashes:
        out(f"   reproduce: {path} {c}")


def run_integration(path, test_filters, env, timeout, totals):
    passes, fails = [], []
    summary = []

    def on_line(line):
        if SUMMARY_RE.match(line):
            summary.append(line)
            return
        m = PASS_RE.match(line)
        if m:
            passes.append(m.group(1))
        else:
            m = FAIL_RE.match(line)
            if m:
                fails.append(m.group(1))
        out(line if (m or not line) else f"  {line}")

    rel = path.relative_to(REPO)
    out(f"== {rel}")
    argv = [sys.executable, str(REPO / "tests" / "lib" / "runfile.py"), str(path), *test_filters]
    rc, elapsed = run_streaming(argv, env, timeout, on_line)
    totals.passed += len(passes)
    totals.failed += len(fails)
    totals.failures += [f"{rel}: {n}" for n in fails]
    broken = None
    if rc is None:
        broken = f"stopped: the run's time budget ran out after {elapsed:.0f} s"
    elif rc != 0 and not fails:
        broken = f"runner exited with status {rc} without a FAIL line"
    if broken:
        out(f"FAIL {path.name}: {broken}")
        totals.fail(f"{rel}: {broken}")
    out(f"   {path.name}: {len(passes)} passed, {len(fails) + (1 if broken else 0)} failed "
        f"({elapsed:.1f} s)")


def main(argv):
    filters = argv[1:]
    budget = float(os.environ.get("PROMPTYARD_TEST_BUDGET_S", "3600"))
    unit_timeout = float(os.environ.get("PROMPTYARD_UNIT_TIMEOUT_S", "300"))
    deadline = time.monotonic() + budget
    token = uuid.uuid4().hex
    env = dict(os.environ)
    for k, v in SANITIZER_DEFAULTS.items():
        env.setdefault(k, v)
    env["PROMPTYARD_TEST_RUN"] = token
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    totals = Totals()

    def selected(name):
        return not filters or any(f in name for f in filters)

    unit_dir = Path(os.environ.get("PROMPTYARD_UNIT") or REPO / "build" / "san" / "tests")
    units = sorted(p for p in unit_dir.glob("test_*")
                   if p.is_file() and os.access(p, os.X_OK)) if unit_dir.is_dir() else []
    if not unit_dir.is_dir():
        out(f"(no unit test directory {unit_dir})")
    for path in units:
        if not selected(path.name):
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            out(f"FAIL {path.name}: not run, the time budget ({budget:.0f} s) ran out")
            totals.fail(f"{path.name}: not run")
            continue
        run_unit(path, env, min(unit_timeout, left), totals)
        strays = sweep_strays(token)
        if strays:
            out(f"   (killed strays: {', '.join(strays)})")

    fuzz_dir = Path(os.environ.get("PROMPTYARD_FUZZ") or REPO / "build" / "fuzz")
    fuzz_seconds = int(os.environ.get("PROMPTYARD_FUZZ_SECONDS", "3"))
    if not fuzz_dir.is_dir():
        out(f"(no fuzz target directory {fuzz_dir})")
    for path in fuzzing.targets(fuzz_dir) if fuzz_dir.is_dir() else []:
        if not selected(path.name):
            continue
        if deadline - time.monotonic() <= 0:
            out(f"FAIL {path.name}: not run, the time budget ({budget:.0f} s) ran out")
            totals.fail(f"{path.name}: not run")
            continue
        run_fuzz(path, env, fuzz_seconds, totals)

    for path in sorted((REPO / "tests" / "integration").glob("test_*.py")):
        if selected(path.name) or selected(str(path.relative_to(REPO))):
            test_filters = []
        else:
            names = test_names(path)
            if names is None:
                test_filters = []
                if filters:
                    continue
            else:
                matching = [n for n in names if any(f in n for f in filters)]
                if not matching:
                    continue
                test_filters = filters
        left = deadline - time.monotonic()
        if left <= 0:
            out(f"FAIL {path.name}: not run, the time budget ({budget:.0f} s) ran out")
            totals.fail(f"{path.name}: not run")
            continue
        run_integration(path, test_filters, env, left, totals)
        strays = sweep_strays(token)
        if strays:
            out(f"   (killed strays: {', '.join(strays)})")

    if totals.failures:
        out("")
        out("failed:")
        for f in totals.failures:
            out(f"  {f}")
    out(f"{totals.passed} passed, {totals.failed} failed")
    return 1 if totals.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
