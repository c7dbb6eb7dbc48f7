#!/usr/bin/python3
"""Runs the libFuzzer targets of tests/fuzz (`make fuzz`; tests/run.py uses
run_target for its brief runs).

    /usr/bin/python3 tests/lib/fuzzing.py [--seconds S] [--bin DIR] [TARGET...]

Each target build/fuzz/fuzz_<name> runs for S seconds on a copy of
tests/fuzz/corpus/<name>/ (so the checked-in corpus does not grow; every
file of it is run first), with tests/fuzz/<name>.dict when there is one
and the flags of tests/fuzz/<name>.options.
Its output goes to build/fuzz/run/<name>/log, crashing inputs to
build/fuzz/run/<name>/artifacts/. One line per target gives executions,
executions per second and crashes (crash, leak, timeout and out-of-memory
inputs); the exit status is 1 when any target crashed or failed to run.
A TARGET (substring, with or without "fuzz_") picks targets by name.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FUZZ_DIR = REPO / "tests" / "fuzz"
STAT_RE = re.compile(r"^stat::(\w+):\s*(\d+)")
CRASH_PREFIXES = ("crash-", "leak-", "timeout-", "oom-")
# libFuzzer's own limits per input: generous, the machine is shared.
PER_INPUT_TIMEOUT_S = 25
RSS_LIMIT_MB = 2048

ENV = {
    # ASan's default quarantine (256 MiB of freed memory kept poisoned) makes
    # every run touch fresh pages: on this VM that halves the executions per
    # second or worse. 16 MiB still holds far more than one input frees, so a
    # use after free within a run is caught all the same.
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    # Leaks of the libraries themselves, each explained there.
    "LSAN_OPTIONS": f"suppressions={FUZZ_DIR / 'lsan.supp'}:print_suppressions=0",
}


@dataclass
class Result:
    name: str
    executions: int = 0
    exec_per_s: int = 0
    seconds: float = 0.0
    corpus_in: int = 0
    corpus_out: int = 0
    crashes: list = field(default_factory=list)
    problem: str = ""  # why the run failed, "" when it did not
    log: Path = None

    @property
    def ok(self):
        return not self.problem

    def line(self):
        s = (f"{self.name}: {self.executions:,} executions ({self.exec_per_s:,}/s) "
             f"in {self.seconds:.0f} s, {len(self.crashes)} crashes; "
             f"corpus {self.corpus_in} -> {self.corpus_out} inputs")
        return s + (f"; FAILED: {self.problem}" if self.problem else "")


def with_options(env):
    """A copy of env with ENV's sanitizer options added; an option the caller
    set (ASAN_OPTIONS=detect_leaks=0) is kept."""
    env = dict(env)
    for var, opts in ENV.items():
        given = env.get(var, "")
        keys = {o.split("=", 1)[0] for o in given.split(":") if o}
        extra = [o for o in opts.split(":") if o.split("=", 1)[0] not in keys]
        env[var] = ":".join(([given] if given else []) + extra)
    return env


def targets(bin_dir, filters=()):
    """The target binaries in bin_dir, by name, that match a filter."""
    found = sorted(p for p in Path(bin_dir).glob("fuzz_*") if p.is_file() and os.access(p, os.X_OK))
    if not filters:
        return found
    return [p for p in found
            if any(f in p.name or f"fuzz_{f}" == p.name for f in filters)]


def target_options(name):
    """libFuzzer flags of tests/fuzz/<name>.options: one a line, # comments."""
    path = FUZZ_DIR / f"{name}.options"
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def run_target(binary, seconds, env=None, work_root=None):
    """Runs one target for `seconds` on a copy of its corpus. Returns a Result."""
    binary = Path(binary)
    name = binary.name[len("fuzz_"):]
    work = Path(work_root or binary.parent / "run") / name
    shutil.rmtree(work, ignore_errors=True)
    corpus, artifacts = work / "corpus", work / "artifacts"
    artifacts.mkdir(parents=True)
    src = FUZZ_DIR / "corpus" / name
    if src.is_dir():
        shutil.copytree(src, corpus)
    else:
        corpus.mkdir()
    res = Result(name=binary.name, log=work / "log")
    res.corpus_in = sum(1 for _ in corpus.iterdir())
    argv = [str(binary), f"-max_total_time={int(seconds)}", "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/", f"-timeout={PER_INPUT_TIMEOUT_S}",
            f"-rss_limit_mb={RSS_LIMIT_MB}"]
    argv += target_options(name)
    dict_path = FUZZ_DIR / f"{name}.dict"
    if dict_path.is_file():
        argv.append(f"-dict={dict_path}")
    argv.append(str(corpus))
    full_env = with_options(env if env is not None else os.environ)
    t0 = time.monotonic()
    with open(res.log, "wb") as log:
        try:
            p = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                               cwd=REPO, stdin=subprocess.DEVNULL,
                               timeout=seconds + 600, start_new_session=True)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = None
    res.seconds = time.monotonic() - t0
    stats = {}
    for line in res.log.read_text("utf-8", "replace").splitlines():
        m = STAT_RE.match(line)
        if m:
            stats[m.group(1)] = int(m.group(2))
    res.executions = stats.get("number_of_executed_units", 0)
    res.exec_per_s = stats.get("average_exec_per_sec", 0)
    res.corpus_out = sum(1 for _ in corpus.iterdir())
    res.crashes = sorted(str(p) for p in artifacts.iterdir() if p.name.startswith(CRASH_PREFIXES))
    if rc is None:
        res.problem = f"did not stop within {seconds + 600} s"
    elif res.crashes:
        res.problem = "crashed on " + ", ".join(res.crashes)
    elif rc != 0:
        res.problem = f"exited with status {rc}"
    elif res.executions == 0:
        res.problem = "ran no input"
    return res


def log_tail(res, lines=40):
    try:
        text = res.log.read_text("utf-8", "replace").splitlines()
    except OSError:
        return []
    return text[-lines:]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--bin", default=str(REPO / "build" / "fuzz"))
    ap.add_argument("targets", nargs="*")
    args = ap.parse_args(argv[1:])
    found = targets(args.bin, args.targets)
    if not found:
        print(f"no fuzz target in {args.bin}" + (f" matching {args.targets}" if args.targets else ""))
        return 1
    failed = 0
    for binary in found:
        res = run_target(binary, args.seconds)
        print(res.line(), flush=True)
        if not res.ok:
            failed += 1
            print(f"---- {res.log} (last lines)")
            for line in log_tail(res):
                print(line)
            print("----")
            for c in res.crashes:
                print(f"reproduce: {binary} {c}")
    print(f"{len(found) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
