#!/usr/bin/python3
"""promptyard's performance figures (`make bench`). A program, not a test:
it measures and prints, it never asserts a time.

    /usr/bin/python3 tests/bench.py [--only a,b,c,d,e,f] [--quick]
                                    [--profile perf|callgrind|massif] [--profile-dir DIR]

Phases (each on a fresh stack of tests/lib/stack.py: librdkafka's mock
cluster, redis-server, the fake provider, the RELEASE worker from bin/):

  a  latency-bound throughput: 20,000 jobs, provider latency 1.0 s,
     worker.max_in_flight 2000, max_connections 2000. Ideal: 2,000 jobs/s.
     Twice: on a warm model (a fleet that has called the model within
     router.window_s; a warm-up job runs through a worker of its own topic
     and group first) and on a cold one (a fleet's first run: no
     observation of the model, called at full concurrency, SPEC §6) on a
     run of four waves (--a-cold-jobs, default 4 x max_in_flight). Both are
     judged against 0.95 of the ideal.
  b  CPU cost: 20,000 jobs (a ~250-byte prompt and metadata, about 300
     bytes a message), zero-latency provider,
     max_in_flight 1000, max_connections 64 (issue 15's figure); worker user+sys CPU
     (/proc/PID/stat, all threads) between the first and the last result,
     per job, over plain HTTP (target <= 45 us/job) and over HTTPS through
     a real TLS server (nginx in front of the fake, tests/lib/tls.py) with
     HTTP/2 and with HTTP/1.1 (target <= 60 us/job for the cheaper), each
     beside http_floor's figure (the HTTP layer alone, same requests);
     then HTTP/2 and HTTP/1.1 over TLS at the same throughput (provider
     latency 100 ms, max_in_flight 200: about 2,000 jobs/s).
  c  memory: worker VmRSS idle (subscribed, no jobs) and with 10,000 jobs in
     flight (provider latency 30 s, warm model); KiB per in-flight job.
     Target <= 16 KiB.
  d  Redis round trips per job: INFO commandstats before/after the run of
     phase b (or a run of its own), commands the worker sends itself
     (EVALSHA, ...) divided by jobs. Target <= 2.
  e  unit benches: tests/unit/test_ledger.c and test_router.c built
     optimised (Makefile flags, no sanitizers) into a temp dir; their
     "bench: ..." lines.
  f  batch mode (SPEC §14): (i) 10,000 `auto` jobs with complete_by 6 hours
     away, then the same 10,000 jobs in `sync` mode on a fresh stack (same
     model, the fake's same usage): the spend of the batch run over the sync
     run (target <= 0.51) and that every job got one ok result; (ii) one
     batch of 50,000 requests collected by a fresh worker: its VmHWM (peak
     RSS) once it holds the batch, before the results exist, and after it
     streamed the 50,000-line results file, settled and produced every
     answer.

Jobs are pre-produced before the worker starts, so a phase measures the
worker, not the producer. Result times are the Kafka timestamps of the
result records (set by the worker's producer when it produces them).
Phase a's target is judged on "first call -> last result" (first call: the
fake provider's log): "first result -> last result" leaves one provider
latency out of the window and overstates the rate by about 1/(waves - 1).
On this kind of machine the fake provider, the mock cluster and Redis share
the cores with the worker: their CPU is printed too.

--profile perf      phase b again under `perf record -e cpu-clock` (DWARF call
                    graphs); reports by DSO and symbol in --profile-dir.
--profile callgrind phase b with the worker under valgrind --tool=callgrind
                    (5,000 jobs unless --b-jobs).
--profile massif    phase c with the worker under valgrind --tool=massif
                    (a detailed snapshot at the in-flight plateau via vgdb).
--profile-libs DIR  LD_LIBRARY_PATH of the worker: unstripped builds of the same
                    libcurl/jansson versions, so that profiles name their
                    internal functions (Debian's are stripped).
Figures of a profiled run are perturbed by the profiler; take the figures
from a run without --profile. --worker-env K=V and --kafka-property K=V are
for experiments (an allocator by LD_PRELOAD, a consumer property).
"""
import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PROMPTYARD_BIN", str(REPO / "bin"))

from tests.lib import bench_util as bu  # noqa: E402
from tests.lib import procs  # noqa: E402
from tests.lib.bench_util import PhaseError  # noqa: E402
from tests.lib.stack import Stack, Worker, write_config  # noqa: E402

PARTITIONS = 8
WARMUP_TOPIC = "bench.warmup"
EXTRA_KAFKA_PROPERTIES = []  # --kafka-property, for experiments
WORKER_ENV = {}              # --profile-libs: LD_LIBRARY_PATH of the worker only
MODEL = {"name": "mini", "provider": "openai", "id": "gpt-4o-mini", "input_usd_per_mtok": 0.15,
         "cached_input_usd_per_mtok": 0.075, "output_usd_per_mtok": 0.60, "context_tokens": 128000,
         "default_max_tokens": 32, "quality": 0.62, "latency_ms": 800}
# A typical short job: a ~250-byte prompt and a little metadata.
PROMPT = ("Summarise the following passage in one sentence for a product catalogue. "
          "The passage describes a stainless steel kettle with a 1.7 litre capacity, an "
          "automatic shut-off, a limescale filter and a 360 degree base; reviewers praise "
          "how quietly it boils.")


def out(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- stack and jobs

def make_stack(latency_ms=0, max_in_flight=1000, connections=256, timeout_ms=30000,
               drain_ms=10000, tls=None):
    """One OpenAI-type provider on the fake, one model, 8 partitions; with
    tls ("h2" or "h1") through the TLS front (tests/lib/tls.py), on its
    listener that offers HTTP/2 or the one that offers only HTTP/1.1."""
    s = Stack(partitions=PARTITIONS, models=[dict(MODEL)], providers=[],
              topics={WARMUP_TOPIC: 1}, tls=tls, tls_log=False)
    s.providers[:] = [{"name": "openai", "type": "openai",
                       "base_url": s.provider_url("/openai/v1", tls),
                       "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": timeout_ms,
                       "max_connections": connections,
                       **({"ca_file": s.tls.ca_file} if tls else {})}]
    s.config["providers"] = s.providers
    s.config["worker"].update({"max_in_flight": max_in_flight, "drain_timeout_ms": drain_ms})
    # Short group timers: librdkafka 2.0.2's mock coordinator otherwise
    # waits out a long session timeout in rebalances (see test_delivery.py).
    s.config["kafka"]["properties"] = ["session.timeout.ms=6000", "heartbeat.interval.ms=500",
                                       *EXTRA_KAFKA_PROPERTIES]
    s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": latency_ms}])
    s.write_config()
    return s


def produce_jobs(s, n):
    run = uuid.uuid4().hex[:6]
    ids = [f"bench-{run}-{i}" for i in range(n)]
    values = [json.dumps({"id": j, "prompt": f"{PROMPT} (document {i})",
                          "metadata": {"doc": i, "batch": run}}).encode()
              for i, j in enumerate(ids)]
    t0 = time.monotonic()
    bu.fast_produce(s.bootstrap, s.jobs_topic, values, [j.encode() for j in ids])
    return time.monotonic() - t0


def start_worker(s, program=None):
    kw = {"program": str(program)} if program else {}
    return s.worker(env=dict(WORKER_ENV), **kw)


def wait_subscribed(w, timeout_s):
    try:
        w.wait_log("partition assigned", timeout=timeout_s)
    except (TimeoutError, RuntimeError) as e:
        raise PhaseError(f"worker not subscribed: {e}") from None


# ---------------------------------------------------------------- a flow: jobs in, results out

def warm_up(s, latency_ms, watch=None):
    """One job through a worker that then stops, so that the measured worker
    starts on a warm model, as a fleet that has run within router.window_s
    does (the model observed in the shared health window). The warm-up
    worker has a topic and a group of its own (a member leaving the
    measured group would rebalance it); its call is answered at once, then
    the fake's rule goes back to latency_ms."""
    rules = [{"prefix": "/openai/v1", "model": "*", "latency_ms": latency_ms}]
    s.set_fake_rules([{**rules[0], "latency_ms": 0}])
    cfg = json.loads(json.dumps(s.config))
    cfg["kafka"].update({"group": s.group + "-warmup", "input_topics": [WARMUP_TOPIC]})
    cfg["worker"]["metrics_listen"] = ""
    path = write_config(s.dir / "warmup.cfg", cfg)
    own = watch is None
    if own:
        watch = bu.ResultWatch(s.bootstrap, s.results_topic, PARTITIONS)
    w = Worker(path, env={**s.env, **WORKER_ENV}, name="warmup")
    s.workers.append(w)
    try:
        bu.fast_produce(s.bootstrap, WARMUP_TOPIC,
                        [json.dumps({"id": f"warmup-{uuid.uuid4().hex[:6]}", "prompt": PROMPT}).encode()],
                        [b"warmup"])
        watch.wait_count(1, 60, "warm-up result", alive=w.running)
    finally:
        w.sigterm()
        w.wait(60)
        s.set_fake_rules(rules)
    watch.skip_existing()
    if own:
        watch.close()


def worker_log_diag(w, keep=40):
    """Prints what the worker logged beyond routine info lines: a failed phase
    should say why without a rerun."""
    try:
        lines = w.log_path.read_text(errors="replace").splitlines()
    except OSError as ex:
        out(f"   (worker log unreadable: {ex})")
        return
    notable = [ln for ln in lines if '"level":"info"' not in ln
               or any(k in ln for k in ("partition", "paus", "resum", "rebalanc", "revok"))]
    out(f"   worker log: {len(lines)} lines, last {min(keep, len(notable))} notable:")
    for ln in notable[-keep:]:
        out("     " + ln[:300])


def run_flow(s, n, timeout_s, program=None, perf_dir=None, fake_log=False, want_threads=True,
             warm_latency_ms=None):
    """Pre-produces n jobs, starts a worker and waits for n results. Returns a
    dict of times (unix s), CPU figures and Redis command counts. With
    warm_latency_ms, a warm-up job first (warm_up)."""
    r = {"jobs": n}
    watch = bu.ResultWatch(s.bootstrap, s.results_topic, PARTITIONS)
    if warm_latency_ms is not None:
        warm_up(s, warm_latency_ms, watch)
    r["produce_s"] = produce_jobs(s, n)
    rc = s.redis.client()
    cs0 = bu.commandstats(rc)
    perf = None
    sampler = None
    try:
        r["t_start"] = time.time()
        w = start_worker(s, program)
        pids = {"worker": w.pid, "fake": s.fake.proc.pid, "mockcluster": s.cluster.proc.pid,
                "redis": s.redis.proc.pid}
        if s.tls:
            pids["nginx"] = s.tls.proc.pid
        extra = {"suspended": lambda: s.fake.stats().get("suspended")}
        if want_threads:
            extra["threads"] = lambda: bu.thread_cpu(w.pid)
        sampler = bu.Sampler(pids, interval=0.05, extra=extra, extra_interval=0.25).start()
        if perf_dir:
            perf = bu.PerfRecord(w.pid, Path(perf_dir) / "perf-b.data")
        try:
            r["t_seen_done"], r["results_seen"] = watch.wait_count(
                n, timeout_s, "results", alive=w.running)
        except PhaseError:
            worker_log_diag(w)
            raise
        # The last acknowledgements are marked done in Redis on the next loop
        # turns (dedupe_done): give them a moment before counting commands.
        time.sleep(1.5)
        r["commandstats"] = bu.commandstats_delta(cs0, bu.commandstats(rc))
    finally:
        if perf:
            r["perf_data"] = perf.stop()
        if sampler:
            sampler.stop()
    recs = watch.read(n)
    watch.close()
    ts = sorted(t for t, _ in recs)
    statuses = {}
    lat = []
    for _, v in recs:
        doc = json.loads(v)
        st = doc.get("status", "?")
        statuses[st] = statuses.get(st, 0) + 1
        if isinstance(doc.get("latency_ms"), (int, float)):
            lat.append(doc["latency_ms"])
    r["statuses"] = statuses
    r["t_first"], r["t_last"] = ts[0] / 1000.0, ts[-1] / 1000.0
    lat.sort()
    r["job_latency_ms"] = {q: lat[min(len(lat) - 1, int(q / 100 * len(lat)))]
                           for q in (50, 90, 99, 100)} if lat else {}
    # Gaps in the flow of results: 100 ms slots between the first and the last
    # result in which no result was produced.
    slots = set(t // 100 for t in ts)
    span_slots = ts[-1] // 100 - ts[0] // 100 + 1
    r["idle_slots"] = (span_slots - len(slots), span_slots)
    for name in pids:
        a, b = sampler.cpu_at(name, r["t_first"]), sampler.cpu_at(name, r["t_last"])
        r[f"cpu_{name}"] = None if a is None or b is None else b - a
    r["sys_worker"] = sampler.cpu_at("worker", r["t_last"], 3) - sampler.cpu_at("worker", r["t_first"], 3)
    r["cpu_worker_total"] = sampler.cpu_at("worker", r["t_last"])
    if want_threads:
        t0 = sampler.extra_at("threads", r["t_first"]) or {}
        t1 = sampler.extra_at("threads", r["t_last"], after=True) or {}
        r["threads"] = {k: v - t0.get(k, 0.0) for k, v in t1.items() if v - t0.get(k, 0.0) > 0}
    sus = [(t, v) for t, v in sampler.extra_samples.get("suspended", []) if v is not None]
    r["peak_in_flight"] = max((v for _, v in sus), default=None)
    mid = [v for t, v in sus if r["t_first"] + 0.5 <= t <= r["t_last"] - 1.0]
    r["mean_in_flight"] = sum(mid) / len(mid) if mid else None
    rss = [x[2] for x in sampler.samples["worker"] if x[2]]
    r["rss_peak_kib"] = max(rss) if rss else None
    if fake_log:
        try:
            calls = sorted(q["ts"] for q in s.fake.requests() if q["ts"] >= r["t_start"])
        except Exception:
            calls = []
        r["t_first_call"] = calls[0] if calls else None
        r["call_times"] = calls
    r["worker"] = w
    return r


# ---------------------------------------------------------------- phase a

def phase_a(args, res):
    """Twice, each on a fresh stack: a warm model (a fleet's steady state)
    and a cold one (a fleet's first run), as --a-runs says."""
    for warm in (True, False):
        if ("warm" if warm else "cold") in args.a_runs:
            phase_a_run(args, res, warm)


def phase_a_run(args, res, warm):
    n = args.a_jobs if warm else args.a_cold_jobs
    latency_s = 1.0
    ideal = args.a_in_flight / latency_s
    key = "a" if warm else "a_cold"
    out(f"\n== a ({'warm model' if warm else 'cold model: a first run'}): latency-bound: {n} jobs, "
        f"provider latency {latency_s} s, max_in_flight {args.a_in_flight}, "
        f"max_connections {args.a_in_flight}")
    with make_stack(latency_ms=int(latency_s * 1000), max_in_flight=args.a_in_flight,
                    connections=args.a_in_flight) as s:
        r = run_flow(s, n, timeout_s=60 + 4 * n / ideal, fake_log=True, want_threads=False,
                     warm_latency_ms=int(latency_s * 1000) if warm else None)
        span = r["t_last"] - r["t_first"]
        rate_fl = n / span if span > 0 else float("inf")
        rate_start = n / (r["t_last"] - r["t_start"])
        first_call = r.get("t_first_call")
        rate_call = n / (r["t_last"] - first_call) if first_call else None
        out(f"   produced {n} jobs in {r['produce_s']:.1f} s; results {r['statuses']}")
        out(f"   first result {r['t_first'] - r['t_start']:.2f} s after worker start"
            + (f", first call {first_call - r['t_start']:.2f} s" if first_call else ""))
        out(f"   jobs/s first result -> last result: {rate_fl:8.0f}  ratio {rate_fl / ideal:.3f}"
            "  (the window misses one latency: biased up by ~1/(waves-1))")
        if rate_call:
            out(f"   jobs/s first call   -> last result: {rate_call:8.0f}  ratio {rate_call / ideal:.3f}"
                "  (steady-state figure)")
        out(f"   jobs/s worker start -> last result: {rate_start:8.0f}  ratio {rate_start / ideal:.3f}"
            "  (includes the group join)")
        print_flow_diag(r)
        calls = r.get("call_times") or []
        if calls:
            early = sum(1 for c in calls if c < first_call + 0.9 * latency_s)
            out(f"   calls started within {0.9 * latency_s:.1f} s of the first call: {early} "
                f"(of max_in_flight {args.a_in_flight})")
            hist = {}
            for c in calls:
                k = int((c - first_call) / 0.25)
                hist[k] = hist.get(k, 0) + 1
            out("   calls per 0.25 s after the first call (t:count, empty slots left out): " +
                " ".join(f"{k * 0.25:.2f}:{v}" for k, v in sorted(hist.items())))
        out(f"   in flight at the fake: peak {r['peak_in_flight']}, mean between first and last "
            f"result {r['mean_in_flight'] and round(r['mean_in_flight'])}")
        out(f"   CPU first->last result: worker {fmt_s(r['cpu_worker'])}, fake {fmt_s(r['cpu_fake'])}, "
            f"mockcluster {fmt_s(r['cpu_mockcluster'])}, redis {fmt_s(r['cpu_redis'])} over {span:.1f} s")
        res[key] = {"ideal": ideal, "waves": n / args.a_in_flight,
                    "rate_first_last": rate_fl, "rate_first_call": rate_call,
                    "rate_start": rate_start, "peak_in_flight": r["peak_in_flight"],
                    "mean_in_flight": r["mean_in_flight"], "statuses": r["statuses"]}


def print_flow_diag(r):
    lat = r.get("job_latency_ms") or {}
    idle, span = r["idle_slots"]
    out("   job latency inside the worker (result latency_ms): " +
        ", ".join(f"p{q} {v} ms" for q, v in lat.items()) +
        f"; 100 ms slots without a result: {idle} of {span}")


def fmt_s(x):
    return "?" if x is None else f"{x:.2f} s"


# ---------------------------------------------------------------- phases b and d

# Phase b's runs: (label, TLS front mode, HTTP version asked for over TLS).
B_MODES = {"plain": ("plain HTTP", None, "1.1"),
           "h2": ("HTTPS, HTTP/2", "h2", "2"),
           "h1": ("HTTPS, HTTP/1.1", "h1", "1.1")}
B_TARGETS = {"plain": 45, "h2": 60, "h1": 60}  # us of worker CPU per job


def b_key(mode):
    return "b" if mode == "plain" else f"b_{mode}"


def phase_b(args, res, d_too):
    """One run per mode of --b-modes (d is reported over the first), then,
    with both TLS modes, HTTP/2 and HTTP/1.1 over TLS at the same throughput."""
    for k, mode in enumerate(args.b_modes):
        try:
            phase_b_run(args, res, mode, d_too and k == 0)
        except (PhaseError, TimeoutError, RuntimeError) as e:
            out(f"   !! b ({mode}) failed: {e}")
            res[b_key(mode)] = "failed"
    if {"h2", "h1"} <= set(args.b_modes) and args.b_rate_jobs and not args.profile:
        for mode in ("h2", "h1"):
            try:
                phase_b_rate(args, res, mode)
            except (PhaseError, TimeoutError, RuntimeError) as e:
                out(f"   !! b at a fixed rate ({mode}) failed: {e}")
                res[f"b_rate_{mode}"] = "failed"


def phase_b_rate(args, res, mode):
    """HTTP/2 against HTTP/1.1 over TLS at one throughput: a provider latency
    of 100 ms and max_in_flight 200 hold both at about 2,000 jobs/s, well
    below what the machine can do, so the CPU per job compares the protocols
    and not how far each got."""
    n, latency_ms, in_flight = args.b_rate_jobs, 100, 200
    label = B_MODES[mode][0]
    out(f"\n== b at a fixed rate ({label}): {n} jobs, provider latency {latency_ms} ms, "
        f"max_in_flight {in_flight}, max_connections {args.b_connections}")
    with make_stack(latency_ms=latency_ms, max_in_flight=in_flight,
                    connections=args.b_connections, tls=B_MODES[mode][1]) as s:
        r = run_flow(s, n, timeout_s=120 + n / 200, want_threads=False,
                     warm_latency_ms=latency_ms)
        span = r["t_last"] - r["t_first"]
        us = r["cpu_worker"] * 1e6 / n
        ng = r.get("cpu_nginx")
        conns = bu.tcp_connections(r["worker"].pid)
        out(f"   results {r['statuses']}; {n / span:.0f} jobs/s; worker CPU {us:.1f} us/job "
            f"(sys {r['sys_worker'] * 1e6 / n:.1f})" +
            (f"; nginx {ng * 1e6 / n:.1f} us/job" if ng is not None else "") +
            f"; worker peak RSS {bu.human_kib(r['rss_peak_kib'])}, {conns} TCP connections open")
        res[f"b_rate_{mode}"] = {"us_per_job": us, "rate": n / span, "rss_kib": r["rss_peak_kib"],
                                 "connections": conns}


def phase_b_run(args, res, mode, d_too):
    n = args.b_jobs
    label, tls, http = B_MODES[mode]
    key, target = b_key(mode), B_TARGETS[mode]
    program = None
    perf_dir = None
    if args.profile == "callgrind":
        program = bu.valgrind_wrapper(args.profile_dir, "callgrind",
                                      procs.bin_path("promptyard-worker"))
    elif args.profile == "perf":
        if not bu.perf_usable():
            raise PhaseError("perf record does not work here")
        perf_dir = Path(args.profile_dir) / mode
        perf_dir.mkdir(parents=True, exist_ok=True)
    out(f"\n== b ({label}): CPU-bound: {n} jobs, zero-latency provider, max_in_flight "
        f"{args.b_in_flight}, max_connections {args.b_connections}" +
        (f" [profile: {args.profile}]" if args.profile else ""))
    slow = 40 if args.profile == "callgrind" else 1
    with make_stack(latency_ms=0, max_in_flight=args.b_in_flight,
                    connections=args.b_connections, tls=tls) as s:
        r = run_flow(s, n, timeout_s=(120 + n / 500) * slow, program=program, perf_dir=perf_dir)
        span = r["t_last"] - r["t_first"]
        us = r["cpu_worker"] * 1e6 / n
        sys_us = r["sys_worker"] * 1e6 / n
        rate = n / span
        out(f"   produced {n} jobs in {r['produce_s']:.1f} s; results {r['statuses']}")
        out(f"   worker CPU first->last result: {r['cpu_worker']:.2f} s over {span:.2f} s wall = "
            f"{us:.1f} us/job (user {us - sys_us:.1f}, sys {sys_us:.1f})  ratio to {target} us: "
            f"{us / target:.2f}")
        out(f"   jobs/s first->last result: {rate:.0f}; worker start->last: "
            f"{n / (r['t_last'] - r['t_start']):.0f}")
        print_flow_diag(r)
        out(f"   worker CPU from start (incl. startup and join): {r['cpu_worker_total']:.2f} s")
        th = sorted(r.get("threads", {}).items(), key=lambda kv: -kv[1])
        if th:
            out("   worker CPU by thread: " + ", ".join(
                f"{k} {v * 1e6 / n:.1f} us/job" for k, v in th[:8]))
        others = {k: r.get(f"cpu_{k}") for k in ("fake", "mockcluster", "redis", "nginx")
                  if f"cpu_{k}" in r}
        out("   other processes' CPU in the same window: " + ", ".join(
            f"{k} {v:.2f} s ({v * 1e6 / n:.1f} us/job)" for k, v in others.items() if v is not None))
        busy = (r["cpu_worker"] + sum(v for v in others.values() if v)) / span
        out(f"   machine: {busy:.2f} of {os.cpu_count()} cores busy with the stack in that window "
            f"(load average {os.getloadavg()[0]:.1f}: other work shares the cores); "
            f"worker peak RSS {bu.human_kib(r['rss_peak_kib'])}")
        res[key] = {"us_per_job": us, "sys_us_per_job": sys_us, "rate": rate, "target": target,
                    "label": label, "threads_us": {k: v * 1e6 / n for k, v in th},
                    "others_us": {k: (v * 1e6 / n if v else None) for k, v in others.items()},
                    "statuses": r["statuses"], "profile": args.profile}
        if not args.profile:
            # Not under a profiler: the profile is of the worker's run alone.
            r["worker"].sigterm()
            r["worker"].wait(60)
            fl = http_floor(s, n, args.b_in_flight, http=http)
            if fl:
                floor_us = fl["user_us_per_call"] + fl["sys_us_per_call"]
                res[key]["http_floor_us"] = floor_us
                out(f"   the worker's HTTP layer alone (http_floor: same request, same pool and "
                    f"server, no Kafka/Redis/routing): {floor_us:.1f} us/call (user "
                    f"{fl['user_us_per_call']:.1f}, sys {fl['sys_us_per_call']:.1f}); "
                    f"the rest of a job: {us - floor_us:.1f} us")
        if d_too:
            report_d(r, res)
        if program is not None:
            # valgrind writes its file at exit: drain and stop the worker.
            r["worker"].sigterm()
            try:
                r["worker"].wait(300)
            except TimeoutError:
                out("   (the worker under valgrind did not exit in 300 s)")
            outs = sorted(Path(args.profile_dir).glob("callgrind.out.*"))
            if outs:
                out(f"   callgrind output: {outs[-1]} (callgrind_annotate --inclusive=yes ...)")
        if r.get("perf_data"):
            paths = bu.perf_reports(r["perf_data"], perf_dir)
            out(f"   perf data: {r['perf_data']}; reports: " + ", ".join(str(p) for p in paths.values()))
            bd = bu.perf_breakdown(r["perf_data"], perf_dir)
            tot = sum(bd["threads"].values()) or 1
            out("   worker CPU by pipeline stage (main thread; innermost known frame), us/job:")
            for k, v in sorted(bd["stages"].items(), key=lambda kv: -kv[1]):
                out(f"     {v / tot * 100:5.1f}%  {v / tot * us:6.1f}  {k}")
            out("   worker CPU by library (thread|object; malloc charged to its caller), us/job:")
            for k, v in sorted(bd["libs"].items(), key=lambda kv: -kv[1])[:16]:
                out(f"     {v / tot * 100:5.1f}%  {v / tot * us:6.1f}  {k}")


def http_floor(s, n, in_flight, env=None, http="1.1"):
    """Runs bin/http_floor on the stack's config and fake: the CPU per call of
    the worker's HTTP layer alone (tests/tools/http_floor.c), asking for
    HTTP/`http` over TLS, with env added to its environment. None, with the
    reason printed, when it fails."""
    job = json.dumps({"id": "floor", "prompt": f"{PROMPT} (document 1)",
                      "metadata": {"doc": 1, "batch": "floor"}})
    argv = [procs.bin_path("http_floor"), "--config", str(s.config_path), "--model", MODEL["name"],
            "--job", job, "--calls", str(n), "--in-flight", str(in_flight), "--http", http]
    try:
        p = subprocess.run(argv, env=procs.child_env({**s.env, **WORKER_ENV, **(env or {})}), capture_output=True,
                           text=True, timeout=120 + n / 500)
    except subprocess.TimeoutExpired:
        out("   http_floor did not finish")
        return None
    try:
        r = json.loads(p.stdout)
    except ValueError:
        out(f"   http_floor failed ({p.returncode}): {(p.stderr or p.stdout).strip()[:300]}")
        return None
    if r["failures"]:
        out(f"   http_floor: {r['failures']} of {r['calls']} calls failed ({r['timeouts']} timed "
            f"out, {r['connect_errors']} could not connect, last HTTP status {r['last_status']}); "
            f"its figure is not the HTTP layer's")
    return r


def report_d(r, res):
    n = r["jobs"]
    cs = r["commandstats"]
    top = {k: v for k, v in cs.items() if k in bu.TOP_LEVEL}
    inner = {k: v for k, v in cs.items() if k not in bu.TOP_LEVEL}
    rt = sum(top.values()) / n
    out(f"\n== d: Redis round trips per job over that run of {n} jobs")
    out("   sent by the worker: " + ", ".join(f"{k} {v} ({v / n:.3f}/job)" for k, v in
                                               sorted(top.items(), key=lambda kv: -kv[1])))
    out("   run inside its Lua scripts (not round trips): " + ", ".join(
        f"{k} {v / n:.2f}/job" for k, v in sorted(inner.items(), key=lambda kv: -kv[1])))
    out(f"   round trips per job: {rt:.3f}  ratio to 2: {rt / 2:.2f}")
    res["d"] = {"round_trips_per_job": rt, "top": top, "inner": inner, "jobs": n}


def phase_d_alone(args, res):
    n = args.d_jobs
    out(f"\n== d (own run): {n} jobs, zero-latency provider")
    with make_stack(latency_ms=0, max_in_flight=args.b_in_flight,
                    connections=args.b_connections) as s:
        r = run_flow(s, n, timeout_s=120 + n / 500, want_threads=False)
        report_d(r, res)


# ---------------------------------------------------------------- phase c

def phase_c(args, res):
    n = args.c_jobs
    massif = args.profile == "massif"
    latency_s = args.c_latency_s if not massif else max(args.c_latency_s, 240)
    program = None
    if massif:
        program = bu.valgrind_wrapper(args.profile_dir, "massif", procs.bin_path("promptyard-worker"))
    out(f"\n== c: memory: {n} jobs in flight, provider latency {latency_s:.0f} s, max_in_flight {n}, "
        f"max_connections {n}" + (" [profile: massif]" if massif else ""))
    with make_stack(latency_ms=int(latency_s * 1000), max_in_flight=n, connections=n,
                    timeout_ms=int((latency_s + 120) * 1000), drain_ms=2000) as s:
        warm_up(s, int(latency_s * 1000))
        w = start_worker(s, program)
        wait_subscribed(w, 120 if massif else 30)
        time.sleep(3 if not massif else 10)
        idle = bu.status_kib(w.pid)
        idle_cpu = bu.cpu_seconds(w.pid)
        idle_map = bu.smaps_breakdown(w.pid)
        out(f"   idle (subscribed, no jobs): VmRSS {bu.human_kib(idle)}; by mapping: " +
            ", ".join(f"{k} {bu.human_kib(v)}" for k, v in idle_map[:6]))
        fake_cpu0 = bu.cpu_seconds(s.fake.proc.pid)
        t0, t0_unix = time.monotonic(), time.time()
        produce_jobs(s, n)
        # Wait for the plateau: the fake holds ~n requests suspended.
        deadline = t0 + (900 if massif else 240) + latency_s
        best, best_t = -1, time.monotonic()
        while True:
            if not w.running():
                raise PhaseError(f"the worker exited ({w.returncode})")
            sus = s.fake.stats().get("suspended", 0)
            if sus > best:
                best, best_t = sus, time.monotonic()
            if sus >= n * 0.995:
                break
            # Longer than one provider latency: with CURLOPT_PIPEWAIT on an
            # HTTP/1.1 provider, curl holds new transfers until the first
            # response shows the connection cannot multiplex.
            if time.monotonic() - best_t > latency_s + 30:
                out(f"   !! in flight stopped growing at {best} of {n}; measuring there")
                break
            if time.monotonic() > deadline:
                raise PhaseError(f"only {sus}/{n} in flight after {deadline - t0:.0f} s")
            time.sleep(0.2)
        ramp = time.monotonic() - t0
        time.sleep(1.0)
        try:
            calls = sorted(q["ts"] for q in s.fake.requests() if q["ts"] >= t0_unix)
            if calls:
                early = sum(1 for c in calls if c < calls[0] + 0.9 * latency_s)
                out(f"   calls started within {0.9 * latency_s:.0f} s of the first call: {early}")
        except Exception:
            pass
        in_flight = s.fake.stats().get("suspended", 0)
        loaded = bu.status_kib(w.pid)
        hwm = bu.status_kib(w.pid, "VmHWM")
        anon = bu.status_kib(w.pid, "RssAnon")
        loaded_map = bu.smaps_breakdown(w.pid)
        arenas = bu.anon_mappings(w.pid)
        worker_cpu = bu.cpu_seconds(w.pid) - idle_cpu
        fake_cpu = bu.cpu_seconds(s.fake.proc.pid) - fake_cpu0
        fake_rss = bu.status_kib(s.fake.proc.pid)
        per_job = (loaded - idle) / in_flight if in_flight else float("nan")
        out(f"   {in_flight} in flight {ramp:.1f} s after producing started")
        out(f"   VmRSS at {in_flight} in flight: {bu.human_kib(loaded)} (VmHWM {bu.human_kib(hwm)}, "
            f"RssAnon {bu.human_kib(anon)}); by mapping: " +
            ", ".join(f"{k} {bu.human_kib(v)}" for k, v in loaded_map[:6]))
        out(f"   glibc malloc arenas (64 MiB anon maps): {arenas[0]} holding {bu.human_kib(arenas[1])}")
        out(f"   per in-flight job above idle: {per_job:.1f} KiB  ratio to 16 KiB: {per_job / 16:.2f}")
        out(f"   CPU during the ramp: worker {worker_cpu:.2f} s, fake provider {fake_cpu:.2f} s "
            f"(fake RSS {bu.human_kib(fake_rss)}) on {os.cpu_count()} cores")
        res["c"] = {"idle_kib": idle, "loaded_kib": loaded, "hwm_kib": hwm, "in_flight": in_flight,
                    "per_job_kib": per_job, "fake_cpu_s": fake_cpu, "worker_cpu_s": worker_cpu,
                    "ramp_s": ramp, "idle_map": idle_map, "loaded_map": loaded_map}
        if massif:
            snap = Path(args.profile_dir) / "massif.snapshot.plateau"
            try:
                subprocess.run(["vgdb", f"--pid={w.pid}", "detailed_snapshot", str(snap)],
                               capture_output=True, timeout=120)
                out(f"   massif snapshot at the plateau: {snap} (ms_print it)")
            except (OSError, subprocess.SubprocessError) as e:
                out(f"   vgdb snapshot failed: {e}")
            if snap.exists():
                rows = bu.massif_top(snap, per=max(1, in_flight))
                out(f"   heap per in-flight job by allocation site (massif, {in_flight} in flight; "
                    f"sum {sum(b for b, _ in rows) / 1024:.1f} KiB incl. idle heap):")
                for b, label in rows[:20]:
                    out(f"     {b:8.0f} B  {label}")
            w.sigterm()
            try:
                w.wait(300)
            except TimeoutError:
                out("   (the worker under massif did not exit in 300 s)")
            return
        if args.c_wait_done:
            watch = bu.ResultWatch(s.bootstrap, s.results_topic, PARTITIONS)
            try:
                watch.wait_count(n, latency_s + 120, "results", alive=w.running)
            finally:
                watch.close()
            time.sleep(2)
            after = bu.status_kib(w.pid)
            out(f"   after all {n} finished: VmRSS {bu.human_kib(after)} "
                f"({(after - idle) / n:.1f} KiB/job still held above idle: freed memory "
                "kept by malloc or caches)")
            res["c"]["after_kib"] = after


# ---------------------------------------------------------------- phase e

UNIT_BENCHES = [("test_ledger", r"bench: reserve\+settle pairs/s\s+([0-9.eE+]+)",
                 "ledger reserve+settle pairs/s"),
                ("test_router", r"bench: routing decisions/s\s+([0-9.eE+]+)",
                 "router routing decisions/s")]


def phase_e(args, res):
    out("\n== e: unit benches (built optimised, no sanitizers)")
    res["e"] = {}
    with tempfile.TemporaryDirectory(prefix="bench-unit-") as tmp:
        for name, pattern, label in UNIT_BENCHES:
            binary, why = bu.build_unit(name, tmp)
            value = None
            if binary is not None:
                value, why = bu.run_unit_bench(binary, pattern)
            if value is None:
                out(f"   {label}: n/a (not built yet: {why})")
            else:
                out(f"   {label}: {value:,.0f}   [{why}]")
            res["e"][label] = value


# ---------------------------------------------------------------- phase f

def batch_stack(n, finish_ms, max_in_flight=2000, wait_ms=2000):
    """make_stack's stack with the provider's batch API on: submissions of
    up to n requests, gathered for wait_ms, polled every second; the fake's
    batches end finish_ms after their creation."""
    s = make_stack(max_in_flight=max_in_flight)
    s.providers[0]["batch"] = True
    s.config["batch"] = {"max_requests": n, "max_wait_ms": wait_ms, "poll_interval_s": 1,
                         "min_lead_s": 3600, "fallback_lead_s": 1800, "default_window_s": 86400}
    s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": 0,
                       "batch_finish_ms": finish_ms}])
    s.write_config()
    return s


def produce_mode_jobs(s, n, mode):
    """n jobs of the same prompts as produce_jobs, in mode; auto's
    complete_by is 6 hours away."""
    run = uuid.uuid4().hex[:6]
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600))
    ids = [f"bench-{run}-{i}" for i in range(n)]
    values = [json.dumps({"id": j, "prompt": f"{PROMPT} (document {i})", "mode": mode,
                          **({"complete_by": until} if mode == "auto" else {})}).encode()
              for i, j in enumerate(ids)]
    bu.fast_produce(s.bootstrap, s.jobs_topic, values, [j.encode() for j in ids])
    return set(ids)


def spent_nusd(s):
    h = s.redis.client(decode_responses=True).hgetall(
        s.config["redis"]["key_prefix"] + "{ledger}:b:default:all")
    return int(h.get("spent", 0)), int(h.get("reserved", 0))


def run_mode(n, mode):
    """n jobs in mode on a fresh stack: spent, ok results, distinct ids, seconds."""
    with batch_stack(n, finish_ms=3000) as s:
        ids = produce_mode_jobs(s, n, mode)
        watch = bu.ResultWatch(s.bootstrap, s.results_topic, PARTITIONS)
        t0 = time.monotonic()
        w = start_worker(s)
        try:
            watch.wait_count(n, 600, f"{mode} results", alive=w.running)
        except PhaseError:
            worker_log_diag(w)
            raise
        secs = time.monotonic() - t0
        recs = watch.read(n)
        watch.close()
        ok, seen, batched = set(), set(), 0
        for _, v in recs:
            doc = json.loads(v)
            seen.add(doc["id"])
            if doc.get("status") == "ok":
                ok.add(doc["id"])
                batched += doc["attempts"][-1].get("mode") == "batch"
        # The ledger settles before the outputs go out: nothing reserved at rest.
        deadline = time.monotonic() + 30
        spent, reserved = spent_nusd(s)
        while reserved and time.monotonic() < deadline:
            time.sleep(0.2)
            spent, reserved = spent_nusd(s)
        return {"spent_nusd": spent, "reserved_nusd": reserved, "ok": len(ok & ids),
                "records": len(recs), "distinct": len(seen), "batched": batched,
                "seconds": secs}


def phase_f(args, res):
    n = args.f_jobs
    out(f"\n== f (i): batch vs sync: {n} jobs in mode auto (complete_by 6 h away), then "
        f"the same {n} in mode sync; one model, batch price half the sync price")
    runs = {}
    for mode in ("auto", "sync"):
        r = runs[mode] = run_mode(n, mode)
        usd = r["spent_nusd"] / 1e9
        out(f"   {mode}: {r['ok']}/{n} ok ({r['batched']} answered in provider batches), "
            f"{r['records']} result records, spent ${usd:.6f} ({r['spent_nusd']} nUSD), "
            f"reserved at rest {r['reserved_nusd']}, {r['seconds']:.1f} s")
    ratio = runs["auto"]["spent_nusd"] / runs["sync"]["spent_nusd"]
    delivered = all(runs[m]["ok"] == n and runs[m]["distinct"] == n for m in runs)
    out(f"   spend auto / sync: {ratio:.4f}  (target <= 0.51); every result delivered: "
        f"{'yes' if delivered else 'NO'}")
    res["f"] = {"ratio": ratio, "delivered": delivered, "runs": runs}
    phase_f_collect(args, res)


def phase_f_collect(args, res):
    n = args.f_collect_jobs
    out(f"\n== f (ii): collecting a {n}-request batch: a fresh worker's VmHWM before and after")
    # One submission: it goes when it holds n requests (the wait is longer
    # than the jobs take to arrive).
    with batch_stack(n, finish_ms=60000, max_in_flight=n + 1000, wait_ms=120000) as s:
        s.config["kafka"]["properties"] = ["session.timeout.ms=6000",
                                           "heartbeat.interval.ms=500"]
        s.write_config()
        produce_mode_jobs(s, n, "batch")
        a = start_worker(s)
        r = s.redis.client(decode_responses=True)
        base = s.config["redis"]["key_prefix"] + "{ledger}:"

        def batched():
            return sum(int(r.hget(base + "batch:" + i, "requests_total") or 0)
                       for i in r.zrange(base + "batches", 0, -1))
        # Every job in a recorded batch before the submitter stops (a job
        # joining a group during a drain is submitted at once, alone).
        deadline = time.monotonic() + 300
        while batched() < n:
            if not a.running() or time.monotonic() > deadline:
                worker_log_diag(a)
                raise PhaseError(f"the submitting worker recorded {batched()}/{n} requests")
            time.sleep(0.5)
        n_batches = r.zcard(base + "batches")
        out(f"   submitter: {n} requests in {n_batches} recorded batch(es), VmHWM "
            f"{bu.human_kib(bu.status_kib(a.pid, 'VmHWM'))}; stopping it (its claims lapse and "
            "a fresh worker takes the batches)")
        a.sigterm()
        a.wait(60)
        b = start_worker(s)
        me = f"{socket.gethostname()}-{b.pid}"
        deadline = time.monotonic() + 120
        while any(r.hget(base + "bsub:" + t, "collector") != me
                  for t in r.zrange(base + "bsubs", 0, -1)):
            if not b.running() or time.monotonic() > deadline:
                worker_log_diag(b)
                raise PhaseError("the collector did not claim every batch")
            time.sleep(0.2)
        time.sleep(1.0)
        before_hwm, before_rss = bu.status_kib(b.pid, "VmHWM"), bu.status_kib(b.pid)
        out(f"   collector holding the batch (polling, results not there yet): VmHWM "
            f"{bu.human_kib(before_hwm)}, VmRSS {bu.human_kib(before_rss)}")
        cpu0, t0 = bu.cpu_seconds(b.pid), time.monotonic()
        watch = bu.ResultWatch(s.bootstrap, s.results_topic, PARTITIONS)
        try:
            watch.wait_count(n, 600, "collected results", alive=b.running)
        except PhaseError:
            worker_log_diag(b)
            raise
        finally:
            watch.close()
        # The worker's CPU over the collection (its polls until the results
        # are there included): per request, what streaming costs.
        cpu, secs = bu.cpu_seconds(b.pid) - cpu0, time.monotonic() - t0
        time.sleep(1.0)
        after_hwm, after_rss = bu.status_kib(b.pid, "VmHWM"), bu.status_kib(b.pid)
        size = None
        try:  # the results file as the worker streamed it, for its size
            import urllib.request
            for fb in s.fake._call("GET", "/_control/batches")["batches"]:
                if fb.get("output_file_id"):
                    url = s.fake.url("/openai/v1") + f"/files/{fb['output_file_id']}/content"
                    key = s.env.get(s.providers[0]["api_key_env"], "")
                    q = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
                    with urllib.request.urlopen(q, timeout=60) as resp:
                        size = (size or 0) + len(resp.read())
        except Exception as e:
            out(f"   (results file size unknown: {e})")
        out(f"   after collecting {n} answers: VmHWM {bu.human_kib(after_hwm)} "
            f"(+{bu.human_kib(after_hwm - before_hwm)}), VmRSS {bu.human_kib(after_rss)}"
            + (f"; results file {size / 1e6:.1f} MB" if size else ""))
        out(f"   collection: {secs:.1f} s to the last result, worker CPU {cpu:.1f} s "
            f"({cpu * 1e6 / n:.0f} us per request)")
        res["f_collect"] = {"jobs": n, "hwm_before_kib": before_hwm, "hwm_after_kib": after_hwm,
                            "rss_before_kib": before_rss, "rss_after_kib": after_rss,
                            "results_bytes": size, "cpu_s": cpu, "seconds": secs}


# ---------------------------------------------------------------- table

def table(res, machine):
    rows = []

    def row(phase, what, value, target, ratio, ok):
        rows.append((phase, what, value, target, ratio, ok))

    a = res.get("a")
    if isinstance(a, dict):
        steady = a["rate_first_call"] or a["rate_first_last"]
        row("a", "jobs/s, first call -> last result", f"{steady:.0f}",
            f">= 0.95 x {a['ideal']:.0f}", f"{steady / a['ideal']:.3f}", steady / a["ideal"] >= 0.95)
        row("a", "jobs/s, first -> last result", f"{a['rate_first_last']:.0f}",
            f"(ideal {a['ideal']:.0f})", f"{a['rate_first_last'] / a['ideal']:.3f}", None)
        row("a", "jobs/s, worker start -> last result", f"{a['rate_start']:.0f}",
            f"(ideal {a['ideal']:.0f})", f"{a['rate_start'] / a['ideal']:.3f}", None)
    elif a:
        row("a", "latency-bound jobs/s", "FAILED", "", "", False)
    ac = res.get("a_cold")
    if isinstance(ac, dict):
        cold = ac["rate_first_call"] or ac["rate_first_last"]
        row("a", f"cold model, {ac['waves']:g} waves: first call -> last result",
            f"{cold:.0f}", f">= 0.95 x {ac['ideal']:.0f}", f"{cold / ac['ideal']:.3f}",
            cold / ac["ideal"] >= 0.95)
    for mode, (label, _, _) in B_MODES.items():
        b, target = res.get(b_key(mode)), B_TARGETS[mode]
        if isinstance(b, dict):
            row("b", f"{label}: worker CPU us/job" + (" (profiled)" if b["profile"] else ""),
                f"{b['us_per_job']:.1f}", f"<= {target}", f"{b['us_per_job'] / target:.2f}",
                b["us_per_job"] <= target)
            row("b", f"{label}: jobs/s, first -> last result", f"{b['rate']:.0f}", "", "", None)
            if b.get("http_floor_us") is not None:
                row("b", f"{label}: HTTP layer alone (http_floor) us/call",
                    f"{b['http_floor_us']:.1f}", "", "", None)
        elif b:
            row("b", f"{label}: worker CPU us/job", "FAILED", f"<= {target}", "", False)
    for mode in ("h2", "h1"):
        br = res.get(f"b_rate_{mode}")
        if isinstance(br, dict):
            row("b", f"{B_MODES[mode][0]} at ~2,000 jobs/s: worker CPU us/job",
                f"{br['us_per_job']:.1f}", "", f"({br['rate']:.0f} jobs/s)", None)
    c = res.get("c")
    if isinstance(c, dict):
        row("c", "VmRSS idle", bu.human_kib(c["idle_kib"]), "", "", None)
        row("c", f"VmRSS, {c['in_flight']} in flight", bu.human_kib(c["loaded_kib"]), "", "", None)
        row("c", "KiB per in-flight job", f"{c['per_job_kib']:.1f}", "<= 16",
            f"{c['per_job_kib'] / 16:.2f}", c["per_job_kib"] <= 16)
        row("c", "fake provider CPU during the ramp", f"{c['fake_cpu_s']:.1f} s", "", "", None)
    elif c:
        row("c", "KiB per in-flight job", "FAILED", "<= 16", "", False)
    d = res.get("d")
    if isinstance(d, dict):
        row("d", "Redis round trips/job", f"{d['round_trips_per_job']:.3f}", "<= 2",
            f"{d['round_trips_per_job'] / 2:.2f}", d["round_trips_per_job"] <= 2)
    elif d:
        row("d", "Redis round trips/job", "FAILED", "<= 2", "", False)
    e = res.get("e")
    if isinstance(e, dict):
        for label, v in e.items():
            row("e", label, "n/a (not built yet)" if v is None else f"{v:,.0f}", "", "", None)
    elif e:
        row("e", "unit benches", "FAILED", "", "", None)
    f = res.get("f")
    if isinstance(f, dict):
        row("f", "spend, auto (batch) / sync", f"{f['ratio']:.4f}", "<= 0.51",
            f"{f['ratio'] / 0.51:.2f}", f["ratio"] <= 0.51)
        row("f", "every result delivered, both modes", "yes" if f["delivered"] else "NO", "",
            "", f["delivered"])
    elif f:
        row("f", "batch vs sync spend", "FAILED", "<= 0.51", "", False)
    fc = res.get("f_collect")
    if isinstance(fc, dict):
        row("f", f"collector VmHWM before/after {fc['jobs']} answers",
            f"{bu.human_kib(fc['hwm_before_kib'])} / {bu.human_kib(fc['hwm_after_kib'])}", "",
            "", None)

    out("\n== summary")
    w = [max(len(str(r[i])) for r in rows + [("phase", "figure", "value", "target", "ratio", "")])
         for i in range(5)]
    hdr = ("phase", "figure", "value", "target", "ratio")
    out("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + "  met")
    for r in rows:
        met = "" if r[5] is None else ("yes" if r[5] else "NO")
        out("  ".join(str(r[i]).ljust(w[i]) for i in range(5)) + "  " + met)
    out("\nmachine: " + "; ".join(f"{k} {v}" for k, v in machine.items()))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="a,b,c,d,e,f", help="phases, e.g. a,b")
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    ap.add_argument("--profile", choices=["perf", "callgrind", "massif"])
    ap.add_argument("--profile-dir", default=None)
    ap.add_argument("--profile-libs", metavar="DIR",
                    help="LD_LIBRARY_PATH for the worker: unstripped builds of the same "
                         "libcurl/jansson versions, so that profiles name their functions")
    ap.add_argument("--a-jobs", type=int)
    ap.add_argument("--a-in-flight", type=int, default=2000)
    ap.add_argument("--a-cold-jobs", type=int, help="jobs of the cold run (default: four waves)")
    ap.add_argument("--a-runs", default="warm,cold", help="phase a's runs: warm, cold")
    ap.add_argument("--b-jobs", type=int)
    ap.add_argument("--b-in-flight", type=int, default=1000)
    ap.add_argument("--b-connections", type=int, default=64)
    ap.add_argument("--b-modes", default="plain,h2,h1",
                    help="phase b's runs: plain (HTTP), h2 (HTTPS, HTTP/2), h1 (HTTPS, HTTP/1.1)")
    ap.add_argument("--b-rate-jobs", type=int,
                    help="jobs of the fixed-rate HTTP/2 vs HTTP/1.1 runs (0: none)")
    ap.add_argument("--c-jobs", type=int)
    ap.add_argument("--c-latency-s", type=float, default=30.0)
    ap.add_argument("--no-c-wait-done", dest="c_wait_done", action="store_false",
                    help="skip the RSS reading after the in-flight jobs finish")
    ap.add_argument("--d-jobs", type=int)
    ap.add_argument("--f-jobs", type=int, help="phase f (i): jobs per mode (10,000)")
    ap.add_argument("--f-collect-jobs", type=int,
                    help="phase f (ii): requests of the collected batch (50,000)")
    ap.add_argument("--kafka-property", action="append", default=[], metavar="K=V",
                    help="extra kafka.properties entry for the worker (experiments)")
    ap.add_argument("--worker-env", action="append", default=[], metavar="K=V",
                    help="extra environment of the worker, e.g. LD_PRELOAD=libjemalloc.so.2 "
                         "(experiments)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    EXTRA_KAFKA_PROPERTIES.extend(args.kafka_property)
    for kv in args.worker_env:
        k, _, v = kv.partition("=")
        WORKER_ENV[k] = v
    if args.profile_libs:
        WORKER_ENV["LD_LIBRARY_PATH"] = str(Path(args.profile_libs).resolve())
    phases = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in phases if p not in "abcdef" or len(p) != 1]
    if bad:
        ap.error(f"unknown phases {bad}")
    q = args.quick
    args.a_jobs = args.a_jobs or (4000 if q else 20000)
    args.a_cold_jobs = args.a_cold_jobs or 4 * args.a_in_flight
    args.a_runs = [r.strip() for r in args.a_runs.split(",") if r.strip()]
    if not args.a_runs or any(r not in ("warm", "cold") for r in args.a_runs):
        ap.error("--a-runs: some of warm,cold")
    args.b_jobs = args.b_jobs or (5000 if args.profile == "callgrind" or q else 20000)
    args.c_jobs = args.c_jobs or (1000 if q else 10000)
    if args.b_rate_jobs is None:
        args.b_rate_jobs = 4000 if q else 20000
    args.b_modes = [m.strip() for m in args.b_modes.split(",") if m.strip()]
    if not args.b_modes or any(m not in B_MODES for m in args.b_modes):
        ap.error(f"--b-modes: some of {','.join(B_MODES)}")
    args.d_jobs = args.d_jobs or (2000 if q else 10000)
    args.f_jobs = args.f_jobs or (2000 if q else 10000)
    args.f_collect_jobs = args.f_collect_jobs or (5000 if q else 50000)
    if q:
        args.c_latency_s = min(args.c_latency_s, 10.0)
    if args.profile:
        args.profile_dir = Path(args.profile_dir or tempfile.mkdtemp(prefix="promptyard-profile-"))
        args.profile_dir.mkdir(parents=True, exist_ok=True)
        out(f"profile output in {args.profile_dir}")

    # 10,000 connections need the descriptors; children inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.c_jobs + 1000 and "c" in phases:
        out(f"note: RLIMIT_NOFILE {hard} may be short for {args.c_jobs} connections")
    # SIGTERM ends like Ctrl-C: the stacks' cleanup runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    machine = bu.machine_info()
    out("promptyard bench: " + ("quick " if q else "") + f"phases {','.join(phases)}; binaries "
        f"{os.environ['PROMPTYARD_BIN']}")
    res = {}
    runners = {"a": phase_a, "c": phase_c, "e": phase_e, "f": phase_f}
    for p in phases:
        if p == "d" and "b" in phases:
            continue  # measured over phase b's run
        t0 = time.monotonic()
        mark = procs.mark()
        try:
            if p == "b":
                phase_b(args, res, d_too="d" in phases)
            elif p == "d":
                phase_d_alone(args, res)
            else:
                runners[p](args, res)
        except (PhaseError, TimeoutError, RuntimeError, FileNotFoundError, OSError) as e:
            out(f"   !! phase {p} failed: {e}")
            res.setdefault(p, "failed")
            if p == "b" and "d" in phases:
                res.setdefault("d", "failed")
        finally:
            for err in procs.cleanup(mark):
                out(f"   (cleanup: {err})")
        out(f"   [phase {p}: {time.monotonic() - t0:.0f} s]")
    table(res, machine)
    if args.json:
        bu.dump_json(args.json, {"results": res, "machine": machine})
    return 0


if __name__ == "__main__":
    sys.exit(main())
