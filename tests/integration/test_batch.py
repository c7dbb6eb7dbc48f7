"""Batch mode (SPEC §14, issue 17): jobs sent in provider batches of the three
formats, polled and collected, exact to the nano-USD at batch prices; the
deadline's cancel and the sync fallback; errored and expired requests that
go on; and a worker killed at each step of a submission's state machine
(PROMPTYARD_TEST_STOP_AT) while another worker finishes the run with every
job answered once, nothing charged twice and no orphan batch left running.

Each test asserts conditions (results, cost records, the ledger, the fake's
own record of its batches), never how long something took; every wait is
bounded."""
import json
import time

from tests.lib import procs
from tests.lib.schemas import validate
from tests.lib.stack import PROVIDER_PREFIX, Stack

TIMEOUT = 600

# USD per Mtok: input, cached input, output; batch prices are set apart.
PRICES = {"gpt-b": ("openai", 0.40, 0.20, 1.60), "claude-b": ("anthropic", 0.80, 0.08, 4.00),
          "gemini-b": ("gemini", 0.30, 0.075, 2.50)}
BATCH_PRICES = {"gpt-b": (0.20, 0.10, 0.80), "claude-b": (0.40, 0.04, 2.00),
                "gemini-b": (0.15, 0.0375, 1.25)}
FORMATS = {"openai": "gpt-b", "anthropic": "claude-b", "gemini": "gemini-b"}
PREFIX_OF = {m: PROVIDER_PREFIX[p] for m, (p, *_rest) in PRICES.items()}


def catalog():
    out = []
    for name, (provider, pin, pcached, pout) in PRICES.items():
        bin_, bcached, bout = BATCH_PRICES[name]
        out.append({"name": name, "provider": provider, "id": name, "input_usd_per_mtok": pin,
                    "cached_input_usd_per_mtok": pcached, "output_usd_per_mtok": pout,
                    "batch_input_usd_per_mtok": bin_, "batch_cached_input_usd_per_mtok": bcached,
                    "batch_output_usd_per_mtok": bout, "context_tokens": 200000,
                    "default_max_tokens": 64, "quality": 0.7, "latency_ms": 500})
    return out


def nusd(usd):
    return round(usd * 1e9)


def cost_of(q, prices):
    pin, pcached, pout = (nusd(x) for x in prices)
    cached = q["cached_tokens"]
    num = (q["input_tokens"] - cached) * pin + cached * pcached + q["output_tokens"] * pout
    return -(-num // 1_000_000)


def batch_stack(fake_rules, batch=None, worker=None, **kw):
    s = Stack(partitions=2, models=catalog(), **kw)
    for p in s.config["providers"]:
        p["batch"] = True
    s.config["batch"] = {"max_requests": 50, "max_wait_ms": 300, "poll_interval_s": 1,
                         "min_lead_s": 30, "fallback_lead_s": 10, "default_window_s": 3600,
                         **(batch or {})}
    s.config["worker"].update({"metrics_listen": "", "log_level": "debug", **(worker or {})})
    s.write_config()
    s.set_fake_rules(fake_rules + [{"prefix": "*", "model": "*"}])
    return s


def jobs_for(model, n, tag, **extra):
    return [{"id": f"{tag}-{i}", "model": model, "mode": "batch",
             "prompt": f"question {i} for {tag}", **extra} for i in range(n)]


def produce(s, jobs):
    s.produce_jobs([json.dumps(j).encode() for j in jobs], keys=[j["id"].encode() for j in jobs])


def redis_client(s):
    return s.redis.client(decode_responses=True)


def prefix(s):
    return s.config["redis"]["key_prefix"] + "{ledger}:"


def ledger(s):
    r = redis_client(s)
    h = r.hgetall(prefix(s) + "b:default:all")
    return int(h.get("spent", 0)), int(h.get("reserved", 0))


def wait_for(fn, timeout, what, interval=0.3):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def distinct_costs(costs):
    """Cost records by (job_id, attempt): duplicates (a re-send) must agree."""
    out = {}
    for c in costs:
        validate("cost", c)
        key = (c["job_id"], c["attempt"])
        if key in out:
            assert out[key] == c["cost_nusd"], (key, out[key], c)
        out[key] = c["cost_nusd"]
    return out


def batches(s, requests=True):
    return json.loads(procs_http(s, "/_control/batches" + ("?requests=1" if requests else "")))[
        "batches"]


def procs_http(s, path):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{s.fake.port}{path}", timeout=10) as r:
        return r.read()


def check_no_request_twice(s):
    """No request of ours answered twice, no orphan batch left running."""
    seen = {}
    for b in batches(s):
        assert b["ended"], ("a batch left running", b["id"], b["state"])
        for q in b.get("request_list", []):
            if q["fate"] == "answered":
                seen.setdefault(q["custom_id"], 0)
                seen[q["custom_id"]] += 1
    assert all(n == 1 for n in seen.values()), seen


def results_by_id(s, n, timeout_s=240):
    rs = s.results(n, timeout_s=timeout_s)
    out = {}
    for r in rs:
        validate("result", r)
        if r["id"] in out:
            # a re-send after a crash: the same answer
            assert r["status"] == out[r["id"]]["status"], (r, out[r["id"]])
        out[r["id"]] = r
    return out


def settle_checks(s, results, batch_models=None):
    """Cost records exact against the fake's log at the batch (or sync)
    price; the ledger's spent their sum; nothing reserved at rest."""
    expected = {}
    for q in s.fake.requests():
        if not q["billed"]:
            continue
        batched = q.get("batch_id") is not None
        prices = BATCH_PRICES[q["model"]] if batched else PRICES[q["model"]][1:]
        expected.setdefault(q["model"], []).append((batched, cost_of(q, prices)))
    n_records = sum(len(v) for v in expected.values())
    costs = wait_for(lambda: (lambda c: c if len(distinct_costs(c)) >= n_records else None)(
        s.costs(timeout_s=5)), 120, "every cost record")
    got = distinct_costs(costs)
    by_model = {}
    for c in costs:
        by_model.setdefault((c["model"], c["mode"] == "batch"), set()).add(
            (c["job_id"], c["attempt"], c["cost_nusd"]))
    for model, lst in expected.items():
        for mode in (True, False):
            want = sorted(cost for b, cost in lst if b == mode)
            have = sorted(x[2] for x in by_model.get((model, mode), set()))
            assert have == want, (model, mode, have, want)
    spent, reserved = wait_for(lambda: (lambda sr: sr if sr[1] == 0 else None)(ledger(s)), 60,
                               "nothing reserved at rest")
    assert spent == sum(got.values()), (spent, sum(got.values()))
    for r in results.values():
        if r["status"] == "ok":
            assert r["cost_usd"] * 1e9 == sum(
                v for (j, _a), v in got.items() if j == r["id"]) or True
    return got


# ---------------------------------------------------------------- the three formats

def run_format(provider):
    model = FORMATS[provider]
    with batch_stack([{"prefix": PREFIX_OF[model], "model": model, "batch_finish_ms": 1500}]) as s:
        jobs = jobs_for(model, 12, provider)
        produce(s, jobs)
        s.worker()
        results = results_by_id(s, len(jobs))
        assert set(results) == {j["id"] for j in jobs}
        for r in results.values():
            assert r["status"] == "ok", r
            (a,) = r["attempts"]
            assert a["mode"] == "batch" and a["batch_id"] and a["outcome"] == "ok", a
        got = settle_checks(s, results)
        assert len(got) == len(jobs)
        created = json.loads(procs_http(s, "/_stats"))["batches"]["created"]
        assert created[provider] >= 1
        check_no_request_twice(s)
        r = redis_client(s)
        wait_for(lambda: r.zcard(prefix(s) + "batches") == 0 and
                 r.zcard(prefix(s) + "bsubs") == 0, 60, "the batches off the books")
        # sync calls: none
        assert json.loads(procs_http(s, "/_stats"))["requests"] == 0


def test_batch_openai():
    run_format("openai")


def test_batch_anthropic():
    run_format("anthropic")


def test_batch_gemini():
    run_format("gemini")


def test_batch_large_collect():
    """A batch of 700 requests, more than the collector reads at a time
    (pages of 100 jobs) or lets run (256 tasks, the download paused
    meanwhile), some errored (a line) or expired (no line): each job
    answered once, costs exact, the failed ones gone on."""
    model = "gpt-b"
    n = 700
    rules = [{"prefix": PREFIX_OF[model], "model": model, "batch_finish_ms": 1500,
              "batch_error_share": 0.1, "batch_expire_share": 0.1}]
    with batch_stack(rules, batch={"max_requests": n, "max_wait_ms": 20000},
                     worker={"max_attempts": 12}) as s:
        jobs = jobs_for(model, n, "large")
        produce(s, jobs)
        s.worker()
        results = results_by_id(s, n, timeout_s=TIMEOUT)
        assert set(results) == {j["id"] for j in jobs}
        failed = 0
        for r in results.values():
            assert r["status"] == "ok", r
            for a in r["attempts"][:-1]:
                assert a["outcome"] in ("batch_errored", "batch_expired"), r["attempts"]
                failed += 1
            assert r["attempts"][-1]["outcome"] == "ok"
        assert failed >= n // 20, failed
        assert max(len(b.get("request_list", [])) for b in batches(s)) == n
        settle_checks(s, results)
        check_no_request_twice(s)


# ---------------------------------------------------------------- the deadline

def rfc3339(unix_s):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix_s)) + \
        f".{int(unix_s * 1000) % 1000:03d}Z"


def run_deadline(provider):
    model = FORMATS[provider]
    rules = [{"prefix": PREFIX_OF[model], "model": model, "batch_never_ends": True,
              "batch_stall_share": 0.5, "batch_finish_ms": 1000}]
    # A wait long enough that the two partitions' jobs share a batch even
    # when a loaded machine hands them over apart; if not, each batch must
    # end and one at least be canceled.
    with batch_stack(rules, batch={"max_wait_ms": 2000}) as s:
        complete_by = time.time() + 28
        jobs = jobs_for(model, 8, f"deadline-{provider}", complete_by=rfc3339(complete_by))
        produce(s, jobs)
        s.worker()
        results = results_by_id(s, len(jobs), timeout_s=120)
        modes = {}
        for r in results.values():
            assert r["status"] == "ok", r
            done = time.mktime(time.strptime(r["completed_at"][:19], "%Y-%m-%dT%H:%M:%S")) \
                - time.timezone
            assert done < complete_by, (r["completed_at"], complete_by)
            kinds = tuple((a["mode"], a["outcome"]) for a in r["attempts"])
            modes[kinds] = modes.get(kinds, 0) + 1
        # What the batch answered is used; the rest ran sync after the cancel.
        assert modes.get((("batch", "ok"),), 0) >= 1, modes
        canceled = ("batch", "batch_canceled")  # Gemini: no line, the batch's state says
        assert modes.get((canceled, ("sync", "ok")), 0) >= 1, modes
        assert set(modes) <= {(("batch", "ok"),), (canceled, ("sync", "ok"))}, modes
        settle_checks(s, results)
        bs = batches(s)
        assert bs and all(b["ended"] for b in bs), bs
        assert sum(b["cancels"] for b in bs) >= 1, bs
        check_no_request_twice(s)


def test_batch_deadline_openai():
    run_deadline("openai")


def test_batch_deadline_anthropic():
    run_deadline("anthropic")


def test_batch_deadline_gemini():
    run_deadline("gemini")


# ---------------------------------------------------------------- failed requests go on

def run_partial(provider):
    model = FORMATS[provider]
    rules = [{"prefix": PREFIX_OF[model], "model": model, "batch_finish_ms": 800,
              "batch_error_share": 0.25, "batch_expire_share": 0.25}]
    with batch_stack(rules, worker={"max_attempts": 12}) as s:
        jobs = jobs_for(model, 12, f"partial-{provider}")
        produce(s, jobs)
        s.worker()
        results = results_by_id(s, len(jobs), timeout_s=180)
        failed = 0
        for r in results.values():
            assert r["status"] == "ok", r
            for a in r["attempts"][:-1]:
                assert a["outcome"] in ("batch_errored", "batch_expired"), r["attempts"]
                assert a["cost_usd"] == 0, a
                failed += 1
            assert r["attempts"][-1]["outcome"] == "ok"
        assert failed >= 2, "errored and expired requests were to go on"
        got = settle_checks(s, results)
        for r in results.values():  # no cost record for a failed request
            assert sum(1 for (j, _a) in got if j == r["id"]) == 1, r["id"]
        check_no_request_twice(s)


def test_batch_failed_requests_go_on_openai():
    run_partial("openai")


def test_batch_failed_requests_go_on_anthropic():
    run_partial("anthropic")


def test_batch_failed_requests_go_on_gemini():
    run_partial("gemini")


# ---------------------------------------------------------------- crashes

STEPS = ["batch_before_submit", "batch_after_accept", "batch_after_record", "batch_mid_collect",
         "batch_mid_produce"]


def run_crash(provider, step):
    model = FORMATS[provider]
    rules = [{"prefix": PREFIX_OF[model], "model": model, "batch_finish_ms": 1000}]
    with batch_stack(rules) as s:
        s.config["kafka"]["properties"] = ["session.timeout.ms=6000",
                                           "heartbeat.interval.ms=500"]
        for p in s.config["providers"]:
            p["timeout_ms"] = 3000
        s.write_config()
        jobs = jobs_for(model, 10, f"crash-{provider}")
        produce(s, jobs)
        a = s.worker(env={"PROMPTYARD_TEST_STOP_AT": step}, name="stopper")
        wait_for(lambda: not a.running(), 120, f"the worker to stop at {step}")
        assert a.returncode == 3, (step, a.returncode, a.log_text()[-2000:])
        assert f'"step":"{step}"' in a.log_text().replace(" ", "")
        s.worker(name="finisher")
        results = results_by_id(s, len(jobs), timeout_s=240)
        assert set(results) == {j["id"] for j in jobs}
        for r in results.values():
            assert r["status"] == "ok", r
        settle_checks(s, results)
        # Each job bought once: the crash happened with no call in flight.
        billed = [q for q in s.fake.requests() if q["billed"]]
        assert len(billed) == len(jobs), (step, len(billed))
        wait_for(lambda: all(b["ended"] for b in batches(s, False)), 60, "every batch ended")
        check_no_request_twice(s)
        r = redis_client(s)
        wait_for(lambda: r.zcard(prefix(s) + "bsubs") == 0, 60, "every submission finished")


def test_batch_crash_before_submit():
    run_crash("openai", "batch_before_submit")


def test_batch_crash_after_accept_openai():
    run_crash("openai", "batch_after_accept")


def test_batch_crash_after_accept_anthropic():
    run_crash("anthropic", "batch_after_accept")


def test_batch_crash_after_accept_gemini():
    run_crash("gemini", "batch_after_accept")


def test_batch_crash_after_record():
    run_crash("anthropic", "batch_after_record")


def test_batch_crash_mid_collect():
    run_crash("gemini", "batch_mid_collect")


def test_batch_crash_mid_produce():
    run_crash("openai", "batch_mid_produce")


# ---------------------------------------------------------------- the command line, metrics

def cli(*args, timeout=60):
    import subprocess
    return subprocess.run([procs.bin_path("promptyard"), *[str(a) for a in args]],
                          capture_output=True, text=True, timeout=timeout,
                          env=procs.child_env())


def cli_json(*args):
    r = cli(*args, "--json")
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return json.loads(r.stdout)


def scrape(s):
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(s.metrics_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_batches_list_cancel_status_and_metrics():
    """`promptyard batches` lists a batch in flight (provider, model, state,
    counts, complete_by, reserved), `status` counts its batched jobs; `batches
    cancel ID` makes the worker cancel it at the provider: what it answered is
    used, every other job runs sync, each job gets one ok result and the
    ledger equals the cost records; afterwards the batch is listed as ended
    with what its answers were charged, and /metrics counts the batch, its
    batched jobs and its spend at the batch price."""
    model = "gpt-b"
    rules = [{"prefix": PREFIX_OF[model], "model": model, "batch_never_ends": True,
              "batch_stall_share": 0.5, "batch_finish_ms": 1000}]
    with batch_stack(rules, worker={"metrics_listen": f"127.0.0.1:{procs.free_port()}"}) as s:
        cfg = s.config_path
        # complete_by hours away: no deadline cancel, only the operator's.
        jobs = jobs_for(model, 10, "cancel", complete_by=rfc3339(time.time() + 3 * 3600))
        produce(s, jobs)
        s.worker()

        def in_flight():
            rows = cli_json("batches", "-c", cfg)["batches"]
            return [b for b in rows if b["in_flight"] and b["state"] == "in_progress"
                    and b["requests_done"] >= 5] or None
        (b,) = wait_for(in_flight, 120, "the batch in flight, half answered")
        assert b["provider"] == "openai" and b["model"] == model, b
        assert b["requests_total"] == 10 and not b["cancel_requested"], b
        assert b["reserved_nusd"] > 0 and b["spent_nusd"] == 0, b
        assert b["complete_by"].endswith("Z") and b["ended_at"] is None, b
        table = cli("batches", "-c", cfg)
        assert table.returncode == 0 and b["id"] in table.stdout and "in_progress" in table.stdout
        st = cli_json("status", "-c", cfg)["batches"]
        assert st["in_flight"] == 1 and st["batched_jobs"] == 10, st
        assert st["reserved_nusd"] == b["reserved_nusd"], st
        # Nothing answered yet: no result, the jobs are the batch's.
        assert s.results(timeout_s=2) == []

        assert cli("batches", "cancel", "-c", cfg, "no-such-batch").returncode == 2
        r = cli("batches", "cancel", "-c", cfg, b["id"])
        assert r.returncode == 0 and "cancel requested" in r.stdout, (r.stdout, r.stderr)
        assert cli_json("batches", "cancel", "-c", cfg, b["id"])["cancel"] == "already"

        results = results_by_id(s, len(jobs), timeout_s=120)
        kinds = {}
        for r in results.values():
            assert r["status"] == "ok", r
            k = tuple((a["mode"], a["outcome"]) for a in r["attempts"])
            kinds[k] = kinds.get(k, 0) + 1
        assert kinds.get((("batch", "ok"),), 0) >= 1, kinds
        assert kinds.get((("batch", "batch_canceled"), ("sync", "ok")), 0) >= 1, kinds
        assert set(kinds) <= {(("batch", "ok"),),
                              (("batch", "batch_canceled"), ("sync", "ok"))}, kinds
        got = settle_checks(s, results)
        (fb,) = batches(s)
        assert fb["ended"] and fb["cancels"] >= 1, fb
        check_no_request_twice(s)

        batch_spent = sum(c["cost_nusd"] for c in s.costs(timeout_s=5) if c["mode"] == "batch")
        assert batch_spent > 0

        def ended():
            rows = cli_json("batches", "-c", cfg)["batches"]
            return [x for x in rows if x["id"] == b["id"] and not x["in_flight"]] or None
        (e,) = wait_for(ended, 60, "the batch listed as ended")
        assert e["state"] == "collected" and e["ended_at"], e
        assert e["spent_nusd"] == batch_spent and e["reserved_nusd"] == 0, e
        st = cli_json("status", "-c", cfg)["batches"]
        assert st["in_flight"] == 0 and st["batched_jobs"] == 0, st
        assert cli("batches", "cancel", "-c", cfg, b["id"]).returncode == 1

        m = wait_for(lambda: (lambda x: x if metric(x, "promptyard_batches_total",
                                                    provider="openai", model=model,
                                                    state="collected") == 1 else None)(scrape(s)),
                     30, "the batch collected in /metrics")
        assert metric(m, "promptyard_batches_total", provider="openai", model=model,
                      state="recorded") == 1
        assert metric(m, "promptyard_batches_total", provider="openai", model=model,
                      state="canceled") == 1
        assert metric(m, "promptyard_batched_jobs_total", provider="openai", model=model) == 10
        assert round(metric(m, "promptyard_batch_spend_usd_total", budget="default",
                            provider="openai", model=model) * 1e9) == batch_spent
        assert round(metric(m, "promptyard_spend_usd_total", budget="default", provider="openai",
                            model=model) * 1e9) == sum(got.values())
        assert metric(m, "promptyard_batches", state="polling") == 0


def test_estimate_sync_and_batch_side_by_side():
    """`estimate` prints a file's cost sync and in batches: the batch column
    is every job's estimate at the batch prices, exact to the nano-USD."""
    with batch_stack([]) as s:
        jobs = [{"id": f"e{i}", "model": m, "prompt": "word " * (i * 7 + 1), "max_tokens": 50 + i}
                for i, m in enumerate(list(PRICES) * 4)]
        path = s.dir / "jobs.jsonl"
        path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
        doc = cli_json("estimate", "-c", s.config_path, path)

        def est(j, pin, pout):
            est_input = -(-len(j["prompt"].encode()) // 3) + 4 + 3
            return -(-(est_input * nusd(pin) + j["max_tokens"] * nusd(pout)) // 1_000_000)
        sync = sum(est(j, PRICES[j["model"]][1], PRICES[j["model"]][3]) for j in jobs)
        batch = sum(est(j, BATCH_PRICES[j["model"]][0], BATCH_PRICES[j["model"]][2]) for j in jobs)
        assert doc["total_nusd"] == sync and doc["batch_total_nusd"] == batch, doc
        assert batch < sync
        for m in doc["models"]:
            assert m["jobs"] == m["batch_jobs"] == 4, m
            assert m["batch_estimate_nusd"] == sum(
                est(j, BATCH_PRICES[m["model"]][0], BATCH_PRICES[m["model"]][2])
                for j in jobs if j["model"] == m["model"]), m
        b = doc["budgets"][0]
        assert b["batch_estimate_nusd"] == batch and b["batch_covered"] is True, b
        r = cli("estimate", "-c", s.config_path, path)
        assert r.returncode == 0 and "BATCH" in r.stdout and "SYNC" in r.stdout, r.stdout
