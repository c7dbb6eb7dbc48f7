"""Runs the test_* functions of one test file, in file order.

    /usr/bin/python3 tests/lib/runfile.py tests/integration/test_x.py [FILTER...]
    /usr/bin/python3 -m tests.lib.runfile tests/integration/test_x.py [FILTER...]

With FILTERs only tests whose name contains one of them run. Prints
"PASS name" or "FAIL name: reason" (then the traceback and the tails of the
logs the test attached) per test and ends with "N passed, N failed"; exits 1
if any failed.

Per test: a timeout (signal.alarm; module-level TIMEOUT, default 300 s, or a
function attribute `timeout`), a fresh temp dir if the function takes a
`tmpdir` argument, and cleanup of everything it started (tests.lib.procs).
Optional module-level setup_module() / teardown_module() run once around
the tests; what setup_module starts lives until teardown_module.
"""
import importlib.util
import inspect
import os
import signal
import sys
import time
import traceback
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT_S = 300
LOG_TAIL_LINES = 40


class TestTimeout(BaseException):
    """Raised in the test by the alarm. A BaseException so that a test's own
    `except Exception` cannot swallow it."""


def _on_alarm(signum, frame):
    raise TestTimeout("test timed out")


def _on_term(signum, frame):
    # Turn SIGTERM (the suite's timeout) into an exit that runs cleanup.
    raise SystemExit(128 + signum)


def _ensure_tests_package():
    """Makes `import tests.lib...` resolve to this repository even if some
    other `tests` package is installed on sys.path."""
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    mod = sys.modules.get("tests")
    if mod is None or not any(Path(p).resolve() == REPO / "tests" for p in getattr(mod, "__path__", [])):
        pkg = types.ModuleType("tests")
        pkg.__path__ = [str(REPO / "tests")]
        sys.modules["tests"] = pkg


def _print(*a):
    print(*a, flush=True)


def _show_logs(procs):
    for label, path in procs.attached_logs():
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            continue
        _print(f"---- {label}: last {LOG_TAIL_LINES} lines of {path}")
        _print(procs.tail(path, LOG_TAIL_LINES))
    _print("----")


def _reason(exc):
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]


def _run_one(name, fn, timeout, procs):
    """Runs one test; returns True if it passed."""
    mark = procs.mark()
    tmp = None
    t0 = time.monotonic()
    ok = False
    try:
        kwargs = {}
        if "tmpdir" in inspect.signature(fn).parameters:
            tmp = procs.TempDir(prefix=f"{name}-")
            kwargs["tmpdir"] = tmp.path
        signal.alarm(max(1, int(getattr(fn, "timeout", timeout))))
        try:
            fn(**kwargs)
        finally:
            signal.alarm(0)
        ok = True
    except TestTimeout:
        _print(f"FAIL {name}: timed out after {int(getattr(fn, 'timeout', timeout))} s")
        traceback.print_exc(file=sys.stdout)
    except Exception as e:
        _print(f"FAIL {name}: {_reason(e)}")
        traceback.print_exc(file=sys.stdout)
    if not ok:
        sys.stdout.flush()
        # Stop processes first so their logs are complete, then show them,
        # then remove the dirs.
        _kill_processes_since(procs, mark)
        _show_logs(procs)
    errors = procs.cleanup(mark)
    if ok and errors:
        _print(f"FAIL {name}: cleanup: {'; '.join(errors)}")
        return False
    if ok:
        _print(f"PASS {name} ({time.monotonic() - t0:.1f} s)")
    return ok


def _kill_processes_since(procs, mark):
    for obj in list(procs._registry[mark[0]:]):
        proc = getattr(obj, "proc", None)
        if isinstance(obj, procs.Proc):
            proc = obj
        if proc is not None and hasattr(proc, "kill"):
            try:
                proc.kill()
            except Exception:
                pass


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = Path(argv[1]).resolve()
    filters = argv[2:]
    _ensure_tests_package()
    from tests.lib import procs  # noqa: E402  (after the package fix-up)

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    os.chdir(REPO)

    passed = failed = 0
    mod_name = "tests.integration." + path.stem if path.parent == REPO / "tests" / "integration" \
        else "promptyard_test_" + path.stem
    try:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod
        spec.loader.exec_module(mod)
    except BaseException as e:
        _print(f"FAIL {path.name}: cannot import: {_reason(e)}")
        traceback.print_exc(file=sys.stdout)
        _print("0 passed, 1 failed")
        return 1

    timeout = getattr(mod, "TIMEOUT", DEFAULT_TIMEOUT_S)
    tests = [(n, f) for n, f in vars(mod).items()
             if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == mod.__name__]
    if filters:
        tests = [(n, f) for n, f in tests if any(flt in n for flt in filters)]

    module_mark = procs.mark()
    try:
        if tests and hasattr(mod, "setup_module"):
            signal.alarm(max(1, int(timeout)))
            try:
                mod.setup_module()
            finally:
                signal.alarm(0)
        for name, fn in tests:
            if _run_one(name, fn, timeout, procs):
                passed += 1
            else:
                failed += 1
    except (Exception, TestTimeout) as e:
        _print(f"FAIL {path.name}: setup_module: {_reason(e)}")
        traceback.print_exc(file=sys.stdout)
        _kill_processes_since(procs, module_mark)
        _show_logs(procs)
        failed += 1
    finally:
        if tests and hasattr(mod, "teardown_module"):
            try:
                mod.teardown_module()
            except Exception as e:
                _print(f"FAIL {path.name}: teardown_module: {_reason(e)}")
                traceback.print_exc(file=sys.stdout)
                failed += 1
        procs.cleanup(module_mark)
    _print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
