"""Budgets under full concurrency (issue 4, SPEC §4 and §7): hard caps to the
nano-USD across workers, parents that bind, Redis outages, crashed workers'
leases, and day windows that roll over."""
import json
import subprocess
import time

from tests.lib import procs
from tests.lib.stack import Stack, bin_path, end_offsets, http_get

TIMEOUT = 400

# Every call costs exactly 100 input x 1000 + 50 output x 2000 = 200,000 nano-USD;
# the estimate of a job below is 102 x 1000 + 50 x 2000 = 202,000 (1% over).
MODEL = {"name": "m1", "provider": "openai", "id": "m1", "input_usd_per_mtok": 1.0,
         "cached_input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "context_tokens": 128000,
         "default_max_tokens": 50, "quality": 0.6, "latency_ms": 500}
CALL_NUSD = 200_000
ESTIMATE_NUSD = 202_000
PROMPT = "x" * 285  # ceil(285/3) + 4 + 3 = 102 estimated input tokens


def calls_that_fit(limit_nusd):
    """Calls a budget admits one after another: the next needs spent + estimate <= limit."""
    return (limit_nusd - ESTIMATE_NUSD) // CALL_NUSD + 1


def budget_stack(budgets, latency_ms=100, max_in_flight=500, on_exhausted="fail", **kw):
    s = Stack(partitions=6, models=[dict(MODEL)], providers=[], budgets=budgets, **kw)
    s.providers[:] = [{"name": "openai", "type": "openai", "base_url": s.fake.url("/openai/v1"),
                       "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": 20000,
                       "max_connections": max_in_flight}]
    s.config["providers"] = s.providers
    s.config["worker"].update({"max_in_flight": max_in_flight, "metrics_listen": "",
                               "default_budget": budgets[0]["name"],
                               "on_budget_exhausted": on_exhausted})
    s.config["kafka"]["properties"] = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]
    s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": latency_ms,
                       "input_tokens": 100, "output_tokens": 50}])
    s.write_config()
    return s


def produce(s, n, prefix="b", budget=None):
    jobs = []
    for i in range(n):
        j = {"id": f"{prefix}-{i}", "prompt": PROMPT}
        if budget:
            j["budget"] = budget
        jobs.append(json.dumps(j).encode())
    s.produce_jobs(jobs, keys=[f"{prefix}-{i}".encode() for i in range(n)])


def budget_show(s):
    p = subprocess.run([bin_path("promptyard"), "budget", "show", "--json", "-c", str(s.config_path)],
                       capture_output=True, timeout=30, env=procs.child_env(s.env))
    assert p.returncode == 0, p.stderr.decode()
    return {b["name"]: b for b in json.loads(p.stdout)["budgets"]}


def final_results(s, n, timeout_s):
    """One terminal result per id (the last one seen), polled until n ids are
    in; fewer when timeout_s passes first (the caller's assert says what is
    missing)."""
    by_id = {}

    def all_in():
        by_id.clear()
        by_id.update({r["id"]: r for r in s.results(timeout_s=5)})
        return len(by_id) >= n

    try:
        procs.wait_until(all_in, timeout_s, interval=1, what=f"{n} results")
    except TimeoutError:
        pass
    return by_id


def distinct_costs(s):
    costs = {}
    for c in s.costs(timeout_s=10):
        key = (c["job_id"], c["attempt"])
        assert costs.get(key, c) == c or costs[key]["cost_nusd"] == c["cost_nusd"], key
        costs[key] = c
    return costs


def test_three_workers_hold_a_hard_cap():
    limit = 0.36  # 60% of 3000 calls of $0.0002
    with budget_stack([{"name": "nightly", "limit_usd": limit, "period": "none", "parent": ""}]) as s:
        produce(s, 3000)
        workers = [s.worker(name=f"w{k}") for k in range(3)]
        res = final_results(s, 3000, 300)
        assert len(res) == 3000, len(res)
        ok = [r for r in res.values() if r["status"] == "ok"]
        exhausted = [r for r in res.values() if r["status"] == "error"
                     and r["error"]["code"] == "budget_exhausted"]
        assert len(ok) + len(exhausted) == 3000, (len(ok), len(exhausted))
        b = budget_show(s)["nightly"]
        limit_nusd = 360_000_000
        assert b["limit_nusd"] == limit_nusd
        assert b["spent_nusd"] <= limit_nusd, b
        assert b["spent_nusd"] >= limit_nusd * 95 // 100, b
        assert b["reserved_nusd"] == 0, b
        costs = distinct_costs(s)
        assert sum(c["cost_nusd"] for c in costs.values()) == b["spent_nusd"]
        for w in workers:
            w.sigterm()
        for w in workers:
            assert w.wait(60) == 0


def test_parent_smaller_than_child_binds():
    budgets = [{"name": "team", "limit_usd": 1.0, "period": "none", "parent": "org"},
               {"name": "org", "limit_usd": 0.02, "period": "none", "parent": ""}]
    with budget_stack(budgets) as s:
        produce(s, 200)
        w = s.worker()
        res = final_results(s, 200, 120)
        assert len(res) == 200
        ok = sum(1 for r in res.values() if r["status"] == "ok")
        assert ok == calls_that_fit(20_000_000) == 99, ok  # the parent's $0.02 binds
        assert all(r["error"]["code"] == "budget_exhausted" for r in res.values()
                   if r["status"] == "error")
        b = budget_show(s)
        assert b["org"]["spent_nusd"] == ok * CALL_NUSD == b["team"]["spent_nusd"]
        assert b["org"]["spent_nusd"] <= 20_000_000
        w.sigterm()
        assert w.wait(60) == 0


def test_redis_killed_for_five_seconds():
    with budget_stack([{"name": "default", "limit_usd": 0.3, "period": "none", "parent": ""}],
                      latency_ms=200, redis_appendonly=True) as s:
        produce(s, 2000)
        w = s.worker()
        procs.wait_until(lambda: s.fake.stats()["requests"] >= 500, 120, interval=0.2)
        s.redis.kill()
        time.sleep(5)  # the point of the test: Redis down for 5 s
        s.redis.start()
        res = final_results(s, 2000, 300)
        # What a stuck run needs to be understood: where the money and the calls stand.
        assert len(res) == 2000, (len(res), budget_show(s), s.fake.stats()["by_status"],
                                  sorted(set(f"b-{i}" for i in range(2000)) - set(res))[:20])
        codes = {r["error"]["code"] for r in res.values() if r["status"] == "error"}
        assert codes <= {"budget_exhausted"}, codes
        b = budget_show(s)["default"]
        assert b["spent_nusd"] <= 300_000_000
        costs = distinct_costs(s)
        assert sum(c["cost_nusd"] for c in costs.values()) == b["spent_nusd"]
        w.sigterm()
        assert w.wait(90) == 0


def test_a_job_held_by_a_reservation_that_never_ends_is_logged():
    """A reservation nobody ends (here written by hand; in life a leak) makes
    a job that would fit wait for good: the worker says so in its log every
    25 waits (about 20 s), with the budget's figures, and the job goes on
    once the reservation is gone."""
    with budget_stack([{"name": "default", "limit_usd": 0.01, "period": "none", "parent": ""}],
                      latency_ms=0) as s:
        w = s.worker()
        w.wait_log("partition assigned", 60)
        key = s.config["redis"]["key_prefix"] + "{ledger}:b:default:all"
        rc = s.redis.client()
        rc.hset(key, "reserved", 10_000_000)  # the whole $0.01
        produce(s, 1, "held")
        line = w.wait_log("job still waiting for other reservations on its budget", 60)
        assert line["id"] == "held-0" and line["budget"] == "default", line
        assert line["waits"] == "25" and line["reserved_usd"] == "0.01", line
        assert line["limit_usd"] == "0.01" and line["spent_usd"] == "0", line
        assert s.fake.stats()["requests"] == 0
        rc.hset(key, "reserved", 0)
        res = final_results(s, 1, 60)
        assert res["held-0"]["status"] == "ok", res
        w.sigterm()
        assert w.wait(60) == 0


def test_killed_worker_leases_are_reaped_once():
    with budget_stack([{"name": "default", "limit_usd": 100.0, "period": "none", "parent": ""}],
                      latency_ms=60000, max_in_flight=200) as s:
        # Calls hang at the provider; the worker dies within their 5 s timeout,
        # so its leases (timeout + 15 s) expire about 20 s later.
        s.config["providers"][0]["timeout_ms"] = 5000
        s.write_config()
        # The model has answered before (the worker is up), then hangs.
        s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": 0,
                           "input_tokens": 100, "output_tokens": 50}])
        produce(s, 1, "warm")
        victim = s.worker(name="victim")
        procs.wait_until(lambda: len(s.results(timeout_s=2)) >= 1, 60, interval=0.2)
        s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": 60000,
                           "input_tokens": 100, "output_tokens": 50}])
        produce(s, 200, "k")
        procs.wait_until(lambda: s.fake.stats()["requests"] >= 201, 60, interval=0.1)
        victim.sigkill()
        victim.wait(10)
        s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": 0,
                           "input_tokens": 100, "output_tokens": 50}])
        w = s.worker(name="reaper")
        res = {k: v for k, v in final_results(s, 201, 120).items() if k.startswith("k-")}
        assert len(res) == 200 and all(r["status"] == "ok" for r in res.values())
        procs.wait_until(lambda: sum(1 for c in s.costs(timeout_s=2) if c["estimated"]) >= 200, 60)
        costs = distinct_costs(s)
        estimated = [c for c in costs.values() if c["estimated"]]
        assert len(estimated) == 200, len(estimated)  # each lease reaped once
        assert all(c["cost_nusd"] == 202_000 for c in estimated)  # charged at the estimate
        b = budget_show(s)["default"]
        assert sum(c["cost_nusd"] for c in costs.values()) == b["spent_nusd"]
        assert b["reserved_nusd"] == 0
        w.sigterm()
        assert w.wait(60) == 0


def test_day_budget_rolls_over_at_midnight():
    # The worker's clock starts at 23:59:50 UTC (PROMPTYARD_CLOCK_OFFSET_MS).
    now_ms = int(time.time() * 1000)
    day_ms = 86_400_000
    offset = (now_ms // day_ms + 1) * day_ms - 10_000 - now_ms
    with budget_stack([{"name": "daily", "limit_usd": 0.003, "period": "day", "parent": ""}],
                      latency_ms=0, on_exhausted="pause") as s:
        env = {"PROMPTYARD_CLOCK_OFFSET_MS": str(offset)}
        produce(s, 20, "d")
        w = s.worker(env=env)
        # $0.003 buys 14 calls before midnight; the other 6 wait (pause) for the new day.
        assert calls_that_fit(3_000_000) == 14
        res = final_results(s, 20, 60)
        assert len(res) == 20, len(res)
        assert all(r["status"] == "ok" for r in res.values())
        assert s.fake.stats()["requests"] == 20
        w.sigterm()
        assert w.wait(60) == 0


def test_failed_calls_free_their_reservations():
    with budget_stack([{"name": "default", "limit_usd": 1.0, "period": "none", "parent": ""}],
                      latency_ms=0) as s:
        s.config["router"]["breaker_failures"] = 1000  # not a breaker test
        s.write_config()
        s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "fail_first": 8, "status": 500,
                           "input_tokens": 100, "output_tokens": 50}])
        produce(s, 20, "f")
        w = s.worker()
        res = final_results(s, 20, 60)
        assert len(res) == 20
        failed = [r for r in res.values() if r["status"] == "error"]
        assert len(failed) == 8 and all(r["error"]["code"] == "providers_failed" for r in failed)
        # Unbilled failures settle at 0 at once: nothing stays reserved, and
        # no reaper will charge them later.
        b = budget_show(s)["default"]
        assert b["reserved_nusd"] == 0, b
        assert b["spent_nusd"] == 12 * CALL_NUSD, b
        costs = distinct_costs(s)
        assert not [c for c in costs.values() if c["estimated"]]
        assert sum(c["cost_nusd"] for c in costs.values()) == b["spent_nusd"]
        w.sigterm()
        assert w.wait(60) == 0


def test_a_budget_made_with_the_cli_can_be_named_by_jobs():
    with budget_stack([{"name": "default", "limit_usd": 1.0, "period": "none", "parent": ""}],
                      latency_ms=0) as s:
        s.config["worker"]["metrics_listen"] = f"127.0.0.1:{procs.free_port()}"
        s.write_config()
        p = subprocess.run([bin_path("promptyard"), "budget", "set", "solo", "--limit-usd", "0.001",
                            "-c", str(s.config_path)], capture_output=True, timeout=30,
                           env=procs.child_env(s.env))
        assert p.returncode == 0, p.stderr.decode()
        w = s.worker()
        # The worker reads Redis' budgets once a second; the gauge of "solo"
        # appears in the same step that lets jobs name it.
        def knows_solo():
            try:
                page = http_get(s.metrics_url + "/metrics")[1]
            except OSError:  # not listening yet
                return False
            return b'promptyard_budget_remaining_usd{budget="solo"}' in page
        procs.wait_until(knows_solo, 30, what="the worker knows budget solo")
        produce(s, 8, "solo", budget="solo")
        s.produce_jobs([json.dumps({"id": "nope-1", "prompt": "x", "budget": "nope"}).encode()])
        res = final_results(s, 9, 60)
        assert res["nope-1"]["error"]["code"] == "invalid_job"
        mine = [r for k, r in res.items() if k.startswith("solo-")]
        ok = [r for r in mine if r["status"] == "ok"]
        assert len(ok) == calls_that_fit(1_000_000) == 4, [r.get("error") for r in mine]
        assert all(r["budget"] == "solo" for r in ok)
        assert all(r["error"]["code"] == "budget_exhausted" for r in mine if r["status"] == "error")
        b = budget_show(s)
        assert b["solo"]["spent_nusd"] == 4 * CALL_NUSD and b["default"]["spent_nusd"] == 0
        w.sigterm()
        assert w.wait(60) == 0
