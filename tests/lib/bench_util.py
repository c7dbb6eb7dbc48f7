"""Helpers of tests/bench.py: process accounting from /proc, a background
sampler, result watching on Kafka, Redis command counts, the machine's
description, optimised unit-test builds and the profilers' plumbing.

Nothing here asserts; every wait is bounded and raises PhaseError with a
message when its time runs out, so a phase fails instead of hanging.
"""
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from .procs import REPO

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class PhaseError(RuntimeError):
    """A phase could not produce its figure (timeout, crash, missing tool)."""


# ---------------------------------------------------------------- /proc

def _stat_fields(path):
    """Fields of a /proc stat file after the "(comm)" part, 0-based from field 3."""
    with open(path, "rb") as f:
        data = f.read().decode("ascii", "replace")
    rpar = data.rindex(")")
    comm = data[data.index("(") + 1:rpar]
    return comm, data[rpar + 2:].split()


def cpu_seconds(pid):
    """user+sys CPU seconds of the whole process (all threads), or None if gone."""
    try:
        _, f = _stat_fields(f"/proc/{pid}/stat")
    except (OSError, ValueError):
        return None
    return (int(f[11]) + int(f[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def cpu_split(pid):
    """(user s, sys s) of the whole process, or None."""
    try:
        _, f = _stat_fields(f"/proc/{pid}/stat")
    except (OSError, ValueError):
        return None
    return int(f[11]) / CLK_TCK, int(f[12]) / CLK_TCK


def thread_cpu(pid):
    """{thread name: CPU seconds} summed over threads of one name (librdkafka's
    broker threads are named by broker, the worker's loop by the program)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            comm, f = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except (OSError, ValueError):
            continue
        out[comm] = out.get(comm, 0.0) + (int(f[11]) + int(f[12])) / CLK_TCK
    return out


def status_kib(pid, field="VmRSS"):
    """A kB field of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def tcp_connections(pid):
    """The TCP sockets pid holds open (its file descriptors that are sockets
    in /proc/net/tcp), or None."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
        n = 0
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(path) as f:
                    next(f)
                    n += sum(1 for line in f if line.split()[9] in inodes)
            except OSError:
                pass
        return n
    except OSError:
        return None


def smaps_breakdown(pid, top=8):
    """RSS kB grouped by mapping kind: [heap], [stack], anon (mmap'd arenas,
    thread stacks, big mallocs), each shared object; top entries, largest first."""
    groups = {}
    name = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if re.match(r"^[0-9a-f]+-[0-9a-f]+$", first):
                    parts = line.split()
                    name = parts[5] if len(parts) > 5 else "[anon]"
                    name = os.path.basename(name) if name.startswith("/") else name
                elif first == "Rss:" and name is not None:
                    groups[name] = groups.get(name, 0) + int(line.split()[1])
    except OSError:
        return []
    return sorted(groups.items(), key=lambda kv: -kv[1])[:top]


def anon_mappings(pid):
    """(count, total RSS kB) of anonymous mappings of 60-70 MiB: glibc's
    per-thread malloc arenas (64 MiB reserved each)."""
    n = rss = 0
    cur = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if re.match(r"^[0-9a-f]+-[0-9a-f]+$", first):
                    lo, hi = (int(x, 16) for x in first.split("-"))
                    parts = line.split()
                    cur = (hi - lo) if len(parts) <= 5 else None
                elif first == "Rss:" and cur is not None and 60 << 20 <= cur <= 70 << 20:
                    n += 1
                    rss += int(line.split()[1])
    except OSError:
        pass
    return n, rss


class Sampler:
    """Samples CPU seconds and RSS of named pids every `interval` s in a thread.

    samples[name] = [(unix time s, cpu s, rss kB, sys s)]; extra callables (name ->
    fn() -> value) are sampled too, into extra[name] = [(t, value)]."""

    def __init__(self, pids, interval=0.05, extra=None, extra_interval=0.25):
        self.pids = dict(pids)
        self.interval = interval
        self.extra = dict(extra or {})
        self.extra_interval = extra_interval
        self.samples = {n: [] for n in self.pids}
        self.extra_samples = {n: [] for n in self.extra}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        next_extra = 0.0
        while not self._stop.is_set():
            now = time.time()
            for name, pid in self.pids.items():
                us = cpu_split(pid)
                if us is not None:
                    self.samples[name].append((now, us[0] + us[1], status_kib(pid), us[1]))
            if self.extra and now >= next_extra:
                next_extra = now + self.extra_interval
                for name, fn in self.extra.items():
                    try:
                        self.extra_samples[name].append((time.time(), fn()))
                    except Exception:  # a probe failing is not worth a phase
                        pass
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(5)

    def cpu_at(self, name, t, field=1):
        """CPU seconds (field=1: user+sys, 3: sys) of `name` at unix time t,
        linearly interpolated between samples."""
        s = self.samples[name]
        if not s:
            return None
        if t <= s[0][0]:
            return s[0][field]
        for a, b in zip(s, s[1:]):
            if a[0] <= t <= b[0]:
                if b[0] == a[0]:
                    return a[field]
                return a[field] + (b[field] - a[field]) * (t - a[0]) / (b[0] - a[0])
        return s[-1][field]

    def extra_at(self, name, t, after=False):
        """The extra sample of `name` last taken before t (after=True: first
        taken after t)."""
        s = self.extra_samples.get(name, [])
        if not s:
            return None
        if after:
            return next((v for ts, v in s if ts >= t), s[-1][1])
        best = s[0][1]
        for ts, v in s:
            if ts > t:
                break
            best = v
        return best

    def peak_extra(self, name):
        v = [x for _, x in self.extra_samples.get(name, []) if x is not None]
        return max(v) if v else None


# ---------------------------------------------------------------- Kafka

class ResultWatch:
    """Counts a topic's records through its high watermarks, with one
    long-lived consumer (no group join), and reads them back with their
    timestamps."""

    def __init__(self, bootstrap, topic, partitions):
        self.bootstrap, self.topic = bootstrap, topic
        self.parts = list(range(partitions))
        self.c = Consumer({"bootstrap.servers": bootstrap,
                           "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                           "enable.auto.commit": False, "enable.partition.eof": False,
                           "logger": _quiet_logger()})
        self.base = {p: 0 for p in self.parts}

    def _high(self, p):
        return self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5,
                                            cached=False)[1]

    def skip_existing(self):
        """From now on, counts and reads only records produced after this call."""
        self.base = {p: self._high(p) for p in self.parts}

    def count(self):
        return sum(self._high(p) - self.base[p] for p in self.parts)

    def wait_count(self, n, timeout_s, what, alive=None, progress=None):
        """Waits until at least n records are in; returns the unix time seen.
        alive() -> False aborts early (the worker died)."""
        deadline = time.monotonic() + timeout_s
        last = -1
        while True:
            got = self.count()
            if got >= n:
                return time.time(), got
            if progress and got != last:
                progress(got)
                last = got
            if alive is not None and not alive():
                raise PhaseError(f"{what}: the worker exited with {got}/{n} records in")
            if time.monotonic() >= deadline:
                raise PhaseError(f"{what}: only {got}/{n} records within {timeout_s:.0f} s")
            time.sleep(0.1)

    def read(self, n, timeout_s=120):
        """[(timestamp ms, value bytes)] of the first n records (all partitions)."""
        deadline = time.monotonic() + timeout_s
        self.c.assign([TopicPartition(self.topic, p, self.base[p] or OFFSET_BEGINNING)
                       for p in self.parts])
        out = []
        while len(out) < n and time.monotonic() < deadline:
            for m in self.c.consume(num_messages=5000, timeout=0.5):
                if m.error():
                    continue
                out.append((m.timestamp()[1], m.value()))
        self.c.unassign()
        if len(out) < n:
            raise PhaseError(f"read {self.topic}: {len(out)}/{n} records within {timeout_s} s")
        return out

    def close(self):
        try:
            self.c.close()
        except Exception:
            pass


def _quiet_logger():
    import logging
    lg = logging.getLogger("tests.bench.kafka")
    lg.addHandler(logging.NullHandler())
    lg.propagate = False
    return lg


def fast_produce(bootstrap, topic, values, keys, timeout_s=120):
    """Produces (without per-message callbacks, unlike kafkautil.produce, so
    50,000 jobs take a second or two) and flushes; raises PhaseError on a
    shortfall."""
    from confluent_kafka import Producer
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                  "batch.num.messages": 10000, "queue.buffering.max.messages": 200000,
                  "message.timeout.ms": int(timeout_s * 1000), "logger": _quiet_logger()})
    for v, k in zip(values, keys):
        while True:
            try:
                p.produce(topic, value=v, key=k, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(timeout_s)
    if left or errors:
        raise PhaseError(f"producing jobs: {left} undelivered, errors {errors[:3]}")


# ---------------------------------------------------------------- Redis

# Commands the worker sends itself (each one a round trip, pipelined or not).
# Everything else in commandstats runs inside its Lua scripts.
TOP_LEVEL = {"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro", "script",
             "script|load", "ping", "auth", "select", "hello", "multi", "exec"}
# The bench's own probes.
OURS = {"info", "config", "config|get", "client", "client|setname", "command", "command|docs"}


def commandstats(client):
    """{command: calls} from INFO commandstats ("script|load" style names)."""
    out = {}
    for k, v in client.info("commandstats").items():
        name = k[len("cmdstat_"):] if k.startswith("cmdstat_") else k
        out[name] = int(v["calls"]) if isinstance(v, dict) else int(v)
    return out


def commandstats_delta(before, after):
    d = {}
    for k, v in after.items():
        n = v - before.get(k, 0)
        if n and k not in OURS:
            d[k] = n
    return d


# ---------------------------------------------------------------- machine

def _cmd(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout or p.stderr).strip()  # nginx -v writes to stderr
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = status_like("/proc/meminfo", "MemTotal")
    info = {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem_kib / 1048576:.1f} GiB" if mem_kib else "?",
        "kernel": os.uname().release,
        "librdkafka": _cmd(["pkg-config", "--modversion", "rdkafka"]),
        "libcurl": _cmd(["pkg-config", "--modversion", "libcurl"]),
        "openssl": _cmd(["openssl", "version"]),
        "nginx (TLS front)": (re.search(r"nginx/(\S+)", _cmd(["/usr/sbin/nginx", "-v"])) or [None, "?"])[1],
        "jansson": _cmd(["pkg-config", "--modversion", "jansson"]),
        "hiredis": _cmd(["pkg-config", "--modversion", "hiredis"]),
        "libuv": _cmd(["pkg-config", "--modversion", "libuv"]),
        "redis-server": (re.search(r"v=(\S+)", _cmd(["redis-server", "--version"])) or [None, "?"])[1],
        "cc": _cmd(["cc", "--version"]).splitlines()[0] if _cmd(["cc", "--version"]) else "?",
    }
    return info


def status_like(path, field):
    try:
        for line in open(path):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- unit benches

def makefile_flags():
    """(cflags, libs) of the Makefile's optimised build: CSTD, WARN, the
    non-sanitizer OPT and pkg-config of PKGS, read from the Makefile."""
    text = (REPO / "Makefile").read_text()

    def var(name, nth=0):
        found = re.findall(rf"^{name}\s*:?=\s*(.*)$", text, re.M)
        return found[nth].strip() if len(found) > nth else ""

    pkgs = var("PKGS").split()
    opts = re.findall(r"^OPT\s*:?=\s*(.*)$", text, re.M)
    opt = next((o for o in opts if "sanitize" not in o), "-O2 -g")
    cflags = (f"{var('CSTD')} {var('WARN')} {opt} "
              + _cmd(["pkg-config", "--cflags", *pkgs]) + " -Iworker -Iproducer-tools").split()
    libs = (_cmd(["pkg-config", "--libs", *pkgs]) + " -lm").split()
    return cflags, libs


def build_unit(name, outdir, timeout_s=180):
    """Builds tests/unit/<name>.c optimised (no sanitizers) against
    build/rel/libpromptyard.a into outdir. Returns the binary path, or None
    with the reason if the source (or the library) is absent or fails."""
    src = REPO / "tests" / "unit" / f"{name}.c"
    lib = REPO / "build" / "rel" / "libpromptyard.a"
    if not src.exists():
        return None, "source absent"
    if not lib.exists():
        return None, "build/rel/libpromptyard.a absent (run make)"
    cflags, libs = makefile_flags()
    out = Path(outdir) / name
    cc = os.environ.get("CC", "cc")
    argv = [cc, *cflags, str(src), str(lib), "-o", str(out), *libs]
    try:
        r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, "compile timed out"
    if r.returncode != 0:
        return None, "compile failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:200]
    return out, ""


def run_unit_bench(binary, pattern, timeout_s=300):
    """Runs a unit binary (cwd = repo) and returns (number, line) of the first
    line matching pattern (a regex with one number group), or (None, why)."""
    try:
        r = subprocess.run([str(binary)], cwd=REPO, capture_output=True, text=True,
                           timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout_s} s"
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(pattern, line)
        if m:
            return float(m.group(1)), line.strip()
    return None, "line absent"


# ---------------------------------------------------------------- profilers

def perf_usable():
    """perf record with the cpu-clock software event (hardware counters are
    often absent in VMs): True if it works here."""
    if not shutil.which("perf"):
        return False
    tmp = Path("/tmp") / f"bench-perf-{uuid.uuid4().hex[:6]}.data"
    try:
        r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", str(tmp), "true"],
                           capture_output=True, timeout=30)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        tmp.unlink(missing_ok=True)


class PerfRecord:
    """perf record -p PID (cpu-clock, DWARF call graphs) until stop()."""

    def __init__(self, pid, out, freq=499, callgraph="dwarf,16384"):
        self.out = Path(out)
        argv = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(freq), "-p", str(pid),
                "-o", str(self.out)]
        if callgraph:
            argv += ["--call-graph", callgraph]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: perf writes its file and exits
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.out if self.out.exists() else None

    _cleanup = stop


def perf_reports(data, outdir):
    """Writes flat reports (by DSO, by symbol, and a caller graph of the
    worker's own functions) next to the data; returns their paths."""
    outdir = Path(outdir)
    paths = {}
    for name, args in {
        "dso": ["--sort", "dso", "--no-children"],
        "sym": ["--sort", "dso,sym", "--no-children"],
        "children": ["--sort", "sym", "--children"],
    }.items():
        p = outdir / f"perf-{name}.txt"
        with open(p, "w") as f:
            subprocess.run(["perf", "report", "-i", str(data), "--stdio", "-g", "none",
                            "--percent-limit", "0.3", *args],
                           stdout=f, stderr=subprocess.DEVNULL, timeout=600)
        paths[name] = p
    return paths


def valgrind_wrapper(outdir, tool, worker_bin, extra=()):
    """A shell script that execs the worker under valgrind --tool=TOOL (the
    Worker class takes a program path, not a command line)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if tool == "callgrind":
        opts = [f"--callgrind-out-file={outdir}/callgrind.out.%p"]
    elif tool == "massif":
        opts = [f"--massif-out-file={outdir}/massif.out.%p", "--time-unit=ms",
                "--detailed-freq=1", "--max-snapshots=200", "--depth=40",
                "--threshold=0.1"]
    else:
        raise ValueError(tool)
    script = outdir / f"worker-under-{tool}.sh"
    script.write_text("#!/bin/sh\nexec valgrind -q --tool=%s %s %s %s \"$@\"\n" % (
        tool, " ".join(opts), " ".join(extra), worker_bin))
    script.chmod(0o755)
    return script


def human_kib(kib):
    if kib is None:
        return "?"
    if abs(kib) >= 10240:
        return f"{kib / 1024:.1f} MiB"
    return f"{kib:.0f} KiB"


def dump_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=1, default=str))


# ---------------------------------------------------------------- perf breakdown

# Innermost known frame of a sample -> the pipeline stage it is charged to.
# Several names per stage: -O2 inlines static helpers and turns tail calls
# into jumps, so a stage may show up under any of them.
PERF_STAGES = [
    ("decode job (job_decode: jansson parse + checks)", ["job_decode"]),
    ("route (router_route)", ["router_route", "router_route_clear"]),
    ("build provider request (JSON body, headers)", ["openai_build_request",
                                                      "anthropic_build_request",
                                                      "gemini_build_request"]),
    ("parse provider response (jansson)", ["openai_parse_response", "anthropic_parse_response",
                                           "gemini_parse_response", "provider_json_load"]),
    ("write outputs (result/cost JSON)", ["task_build_outputs", "output_result", "output_cost",
                                          "output_dlq", "outputs_blob"]),
    ("ledger: build reserve/settle/release EVALSHA", ["ledger_reserve", "ledger_settle",
                                                      "ledger_release", "settle_attempt",
                                                      "send_reserve", "reserve_attempt"]),
    ("metrics and health bookkeeping", ["metrics_observe", "metrics_inc", "metrics_add",
                                        "health_record", "health_observe", "health_note"]),
    ("dedupe batch calls (dedupe_flush, on_checked)", ["dedupe_flush", "ledger_dedupe_check",
                                                       "ledger_dedupe_done", "eval_jobs"]),
    ("produce outputs (rd_kafka_producev)", ["rd_kafka_producev", "kafka_produce", "produce_out"]),
    ("delivery reports, task free (dr_msg_cb)", ["dr_msg_cb", "on_delivered", "task_done",
                                                 "task_free"]),
    ("curl: start transfer (http_pool_start: setopt, add_handle)",
     ["http_pool_start", "transfer_get", "headers_for", "curl_multi_add_handle"]),
    ("curl: finish transfer (remove_handle, info_read)", ["curl_multi_remove_handle",
                                                          "curl_multi_info_read", "check_done",
                                                          "transfer_put"]),
    ("curl: socket/timer actions (connect, TLS, send, receive, HTTP)",
     ["curl_multi_socket_action", "on_poll", "on_timeout", "socket_cb", "timer_cb",
      "open_socket", "close_socket"]),
    ("hiredis: read and parse replies", ["redisProcessCallbacks", "redisBufferRead",
                                         "redisLibuvPoll", "redisAsyncHandleRead",
                                         "redisAsyncHandleWrite", "redisBufferWrite"]),
    ("hiredis: format commands", ["redisAsyncCommandArgv", "redisFormatSdsCommandArgv",
                                  "redis_eval", "send_eval", "send_call"]),
    ("kafka consume (rd_kafka_consumer_poll)", ["rd_kafka_consumer_poll", "serve_consumer"]),
    ("kafka serve producer queue (rd_kafka_poll)", ["rd_kafka_poll", "serve_producer"]),
    ("offsets (track, store)", ["kafka_store_offset", "store_track", "track_done", "track_add",
                                "on_before_sleep"]),
    ("libuv loop, epoll", ["uv__io_poll", "uv_run", "uv__run_timers"]),
]
ALLOC = {"malloc", "_int_malloc", "free", "cfree@GLIBC_2.2.5", "_int_free", "__libc_calloc",
         "calloc", "realloc", "_int_realloc", "unlink_chunk.constprop.0", "malloc_consolidate",
         "__GI___libc_free", "__GI___libc_malloc", "__GI___libc_realloc", "sysmalloc",
         "_int_free_merge_chunk", "_int_free_create_chunk", "tcache_put", "tcache_get",
         "__libc_malloc", "__libc_free", "__libc_realloc", "malloc_trim", "unlink_chunk",
         "alloc_perturb", "_int_memalign", "__posix_memalign", "cfree"}


def _dso_name(d):
    d = os.path.basename(d.strip("()"))
    for k in ("libcurl", "libjansson", "librdkafka", "libhiredis", "libuv", "libc.so",
              "promptyard-worker", "kernel", "vdso", "libcrypto", "libssl", "libz"):
        if k in d:
            return {"libc.so": "libc", "promptyard-worker": "worker code",
                    "kernel": "kernel"}.get(k, k)
    return d or "?"


def perf_breakdown(data, outdir):
    """Aggregates perf script callchains: (samples per thread, per pipeline
    stage of the main thread, per library with malloc charged to its caller's
    library). Returns dicts of sample counts and writes perf-breakdown.json."""
    r = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,ip,sym,dso"],
                       capture_output=True, text=True, timeout=900)
    stage_of = {}
    for stage, names in PERF_STAGES:
        for n in names:
            stage_of.setdefault(n, stage)
    threads, stages, libs, alloc_by = {}, {}, {}, {}
    total_main = 0

    def account(comm, frames):
        nonlocal total_main
        threads[comm] = threads.get(comm, 0) + 1
        # An inlined frame belongs to the object of the next real frame.
        fixed, pending = [], []
        for s, d in frames:
            if d == "(inlined)":
                pending.append(s)
                continue
            fixed.extend((ps, d) for ps in pending)
            pending = []
            fixed.append((s, d))
        fixed.extend((ps, "?") for ps in pending)
        frames = fixed
        if not frames:
            return
        leaf_sym, leaf_dso = frames[0]
        lib = _dso_name(leaf_dso)
        if leaf_sym in ALLOC or leaf_sym.startswith("_int_") and lib == "libc":
            caller = next((_dso_name(d) for s, d in frames[1:]
                           if _dso_name(d) != "libc" and s not in ALLOC), "?")
            lib = f"malloc/free (for {caller})"
            alloc_by[caller] = alloc_by.get(caller, 0) + 1
        key = (comm if not comm.startswith("promptyard") else "main", lib)
        libs[key] = libs.get(key, 0) + 1
        if comm.startswith("promptyard"):
            total_main += 1
            stage = next((stage_of[s] for s, _ in frames if s in stage_of), "other")
            stages[stage] = stages.get(stage, 0) + 1

    comm, frames = None, []
    for line in r.stdout.splitlines():
        if not line.strip():
            if comm is not None:
                account(comm, frames)
            comm, frames = None, []
        elif not line[0].isspace():
            if comm is not None:
                account(comm, frames)
            comm, frames = line.split()[0], []
        else:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                rest = parts[1]
                dso = rest[rest.rfind("("):] if rest.endswith(")") else ""
                sym = rest[:rest.rfind("(")].strip() if dso else rest
                sym = sym.replace(" (inlined)", "")
                frames.append((sym, dso))
    if comm is not None:
        account(comm, frames)
    out = {"threads": threads, "stages": stages, "libs": {f"{a}|{b}": v for (a, b), v in libs.items()},
           "alloc_by": alloc_by, "main_samples": total_main}
    dump_json(Path(outdir) / "perf-breakdown.json", out)
    return out


def massif_top(snapshot, per=1, threshold=0.3):
    """Heap allocation sites of a massif (detailed) snapshot, largest first:
    [(bytes/per, label)]. A wrapper (xcalloc, strdup, buf_reserve, ...) is
    split into its callers, labelled "wrapper <- caller"."""
    r = subprocess.run(["ms_print", f"--threshold={threshold}", str(snapshot)],
                       capture_output=True, text=True, timeout=120)
    wrappers = {"xcalloc", "xmalloc", "xrealloc", "xstrdup", "xstrndup", "strdup", "buf_reserve",
                "buf_append", "Curl_hash_add", "mk_hash_element", "dyn_nappend", "Curl_cf_create",
                "Curl_saferealloc", "Curl_dyn_addn"}
    nodes = []  # (depth, bytes, fn)
    for line in r.stdout.splitlines():
        m = re.match(r"^([|\s]*)->\s*[\d.]+% \(([\d,]+)B\) (?:0x[0-9A-F]+: )?(.*)$", line)
        if not m:
            continue
        depth = len(m.group(1)) // 2
        fn = re.sub(r"\s*\(in [^)]*\)|\s*\([^)]*\.[ch]:\d+\)", "", m.group(3)).strip()
        nodes.append((depth, int(m.group(2).replace(",", "")), fn))
    rows = []

    def expand(i, label):
        depth, nbytes, fn = nodes[i]
        label = f"{label} <- {fn}" if label else fn
        if fn not in wrappers and not fn.startswith("in "):
            rows.append((nbytes, label))
            return
        kids = []
        for j in range(i + 1, len(nodes)):
            if nodes[j][0] <= depth:
                break
            if nodes[j][0] == depth + 1:
                kids.append(j)
        if not kids or fn.startswith("in "):
            rows.append((nbytes, label))
            return
        for j in kids:
            expand(j, label)

    for i, (depth, _, _) in enumerate(nodes):
        if depth == 0:
            expand(i, "")
    rows = [(b / per, l) for b, l in rows if "below" not in l]
    return sorted(rows, key=lambda x: -x[0])
