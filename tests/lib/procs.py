"""Processes, temp dirs and logs of a test, and their cleanup.

Everything a test starts registers itself here. `cleanup(mark)` undoes, newest
first, everything registered after `mark()`; the file runner calls it after
each test (and atexit covers the rest), so a failing test leaves nothing
running. Each program runs in its own session (process group) and is killed
by group.

Children get the caller's environment plus sanitizer defaults (see
child_env), including PROMPTYARD_TEST_RUN, which tests/run.py uses to sweep
up strays if a runner itself dies.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Sanitizer defaults for programs built with SAN=1. LeakSanitizer works in
# this environment (checked: a leaking ASan binary reports and exits 1).
SANITIZER_DEFAULTS = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def bin_dir():
    """Where the built programs are: $PROMPTYARD_BIN, else <repo>/bin."""
    return Path(os.environ.get("PROMPTYARD_BIN") or REPO / "bin")


def bin_path(name):
    p = bin_dir() / name
    if not p.exists():
        raise FileNotFoundError(f"{p} not found (build it with make, or set PROMPTYARD_BIN)")
    return str(p)


def child_env(extra=None):
    """os.environ + sanitizer defaults (only where unset) + extra."""
    env = dict(os.environ)
    for k, v in SANITIZER_DEFAULTS.items():
        env.setdefault(k, v)
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
    return env


def free_port():
    """A loopback TCP port free right now (callers retry on the rare race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- registry

_registry = []   # objects with a _cleanup() method, oldest first
_logs = []       # (label, path) attached for failure output


def register(obj):
    _registry.append(obj)
    return obj


def mark():
    """A point to clean up back to: (registry length, attached logs length)."""
    return (len(_registry), len(_logs))


def cleanup(since=(0, 0)):
    """Cleans up everything registered after `since`, newest first. Never raises;
    returns the list of error strings."""
    errors = []
    while len(_registry) > since[0]:
        obj = _registry.pop()
        try:
            obj._cleanup()
        except Exception as e:  # keep going: the rest must still be cleaned
            errors.append(f"cleanup of {obj!r}: {e}")
    del _logs[since[1]:]
    return errors


atexit.register(cleanup)


def attach_log(label, path):
    """Shows the tail of `path` if the current test fails."""
    _logs.append((label, str(path)))


def attached_logs(since=(0, 0)):
    return list(_logs[since[1]:])


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(data.splitlines()[-lines:])


class TempDir:
    """A temporary directory removed at cleanup (or .remove())."""

    def __init__(self, prefix="promptyard-", parent=None):
        parent = parent or os.environ.get("PROMPTYARD_TMP") or None
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        register(self)

    def remove(self):
        if os.environ.get("PROMPTYARD_KEEP_TMP") == "1":
            return
        shutil.rmtree(self.path, ignore_errors=True)

    _cleanup = remove

    def __repr__(self):
        return f"TempDir({self.path})"

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)


# ---------------------------------------------------------------- processes

class Proc:
    """A program in its own session. stdout/stderr: file objects, PIPE or None."""

    def __init__(self, argv, env=None, stdin=subprocess.DEVNULL, stdout=None, stderr=None, cwd=None,
                 register=True):
        self.argv = [str(a) for a in argv]
        self.popen = subprocess.Popen(self.argv, env=child_env(env), stdin=stdin, stdout=stdout,
                                      stderr=stderr, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        if register:
            _registry.append(self)

    def running(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def signal(self, sig):
        """Sends sig to the process itself (not its group); False if it is gone."""
        if self.popen.poll() is not None:
            return False
        try:
            os.kill(self.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def wait(self, timeout):
        """Exit code; raises subprocess.TimeoutExpired if still running after timeout."""
        return self.popen.wait(timeout=timeout)

    def kill(self):
        """SIGKILL to the whole process group, then reap. Once the process has
        been reaped its pid may be reused, so it is never signalled again."""
        if self.popen.poll() is not None:
            return self.popen.returncode
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return self.popen.poll()

    def terminate(self, timeout=10):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code."""
        if self.signal(signal.SIGTERM):
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def _cleanup(self):
        self.kill()
        for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def __repr__(self):
        return f"Proc({os.path.basename(self.argv[0])}, pid={self.pid})"


def read_line(stream, timeout, what):
    """One line from a child's stdout pipe within timeout (bytes decoded)."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: no line within {timeout} s (got {buf!r})")
            if not sel.select(left):
                continue
            chunk = os.read(fd, 1)   # byte by byte: nothing is read past the line
            if not chunk:
                raise EOFError(f"{what}: exited before printing a line (got {buf!r})")
            buf += chunk
    finally:
        sel.close()
    return buf.decode("utf-8", "replace").rstrip("\r\n")


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until truthy (returned) or raises TimeoutError. A
    TimeoutError raised by pred itself (e.g. a shorter wait inside it) counts
    as "not yet"; any other exception propagates."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
        except TimeoutError as e:
            v, last = None, e
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout} s" + (f" (last: {last})" if last else ""))
        time.sleep(interval)
