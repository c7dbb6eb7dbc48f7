"""Routing and failover across real workers (issue 5, SPEC §6): failover on
500, 429 with Retry-After and timeouts; a circuit breaker shared by two
workers; an rpm limit shared by two workers; `fastest` following latency."""
import json
import time

from tests.lib import procs
from tests.lib.stack import Stack

TIMEOUT = 300


def model(name, provider, price_in, latency_ms=800, quality=0.6):
    return {"name": name, "provider": provider, "id": name, "input_usd_per_mtok": price_in,
            "cached_input_usd_per_mtok": price_in, "output_usd_per_mtok": price_in * 4,
            "context_tokens": 128000, "default_max_tokens": 32, "quality": quality,
            "latency_ms": latency_ms}


def two_provider_stack(models, timeout_ms=10000, connections=200, **config):
    s = Stack(partitions=4, models=models, providers=[])
    s.providers[:] = [
        {"name": name, "type": "openai", "base_url": s.fake.url(f"/{name}/v1"),
         "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": timeout_ms,
         "max_connections": connections}
        for name in ("a", "b")]
    s.config["providers"] = s.providers
    s.config["worker"].update({"metrics_listen": "", "default_strategy": "cheapest"})
    s.config["kafka"]["properties"] = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]
    for section, values in config.items():
        s.config[section].update(values)
    s.write_config()
    return s


def produce(s, n, prefix, extra=None):
    jobs = []
    for i in range(n):
        j = {"id": f"{prefix}-{i}", "prompt": f"question {i}"}
        j.update(extra or {})
        jobs.append(json.dumps(j).encode())
    s.produce_jobs(jobs, keys=[f"{prefix}-{i}".encode() for i in range(n)])


def results_for(s, prefix, n, timeout_s=60):
    def got():
        rs = [r for r in s.results(timeout_s=3) if r["id"].startswith(prefix + "-")]
        return rs if len(rs) >= n else None
    return procs.wait_until(got, timeout_s, interval=0.5, what=f"{n} results for {prefix}")


def calls_at(s, prefix):
    return sum(1 for q in s.fake.requests() if q["prefix"] == prefix)


def test_failover_on_500_then_429_then_timeout():
    # a1 is cheaper: tried first; b1 answers. A high breaker threshold keeps
    # the circuit out of this test.
    with two_provider_stack([model("a1", "a", 0.1), model("b1", "b", 1.0)], timeout_ms=1500,
                            router={"breaker_failures": 1000}) as s:
        w = s.worker()
        phases = [("p500", {"status": 500}, "http_500"),
                  ("p429", {"status": 429, "retry_after_s": 1}, "http_429"),
                  ("ptimeout", {"hang": True}, "timeout")]
        for prefix, rule, outcome in phases:
            s.set_fake_rules([{"prefix": "/a/v1", "model": "*", **rule},
                              {"prefix": "/b/v1", "model": "*", "latency_ms": 10}])
            produce(s, 10, prefix)
            rs = results_for(s, prefix, 10)
            seen = 0
            for r in rs:
                assert r["status"] == "ok", r
                assert r["model"] == "b1" and r["provider"] == "b"
                kinds = [(a["model"], a["outcome"]) for a in r["attempts"]]
                assert kinds[-1] == ("b1", "ok"), kinds
                # A job either met A's failure, or was kept off A by what
                # earlier ones taught (Retry-After, A's circuit).
                for k in kinds[:-1]:
                    assert k in {("a1", outcome), ("a1", "rate_limited"),
                                 ("a1", "circuit_open")}, kinds
                seen += ("a1", outcome) in kinds
            assert seen >= 1, (prefix, [r["attempts"] for r in rs][:2])
            s.fake.release()
            # The point of the phase, not a wait for an event: A's Retry-After
            # (1 s) passes before the next phase.
            time.sleep(1.5)
        w.sigterm()
        assert w.wait(60) == 0


def test_breaker_shared_by_two_workers():
    failures, cooldown_ms, run_s, batch = 5, 5000, 20, 20
    with two_provider_stack([model("a1", "a", 0.1), model("b1", "b", 1.0)],
                            router={"breaker_failures": failures,
                                    "breaker_cooldown_ms": cooldown_ms}) as s:
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "status": 500},
                          {"prefix": "/b/v1", "model": "*", "latency_ms": 20}])
        workers = [s.worker(name=f"w{k}") for k in range(2)]
        t0 = time.monotonic()
        # a1 is cold: the first batch's jobs call it at full concurrency
        # (SPEC §6), all of them, failing together. The stream goes on once
        # that wave is over, so that the wave is one batch and not whatever
        # piled up while the workers joined the group.
        produce(s, batch, "br0")
        results_for(s, "br0", batch)
        first_wave = calls_at(s, "/a/v1")
        assert first_wave <= batch, first_wave
        # A steady stream of jobs for the rest of the run.
        n = 1
        while time.monotonic() - t0 < run_s:
            produce(s, batch, f"br{n}")
            n += 1
            time.sleep(0.5)  # the stream's pace: the test runs for run_s
        elapsed = time.monotonic() - t0
        a_calls = calls_at(s, "/a/v1")
        # The breaker opens on the wave's failures (consecutive across
        # workers). A worker that took fewer than `failures` of the wave
        # may call a1 again, one call at a time, until its own count opens
        # it here too (its view of Redis lags a refresh): fewer than
        # `failures` each. Afterwards one probe per cooldown across both
        # workers.
        allowed = (first_wave + len(workers) * (failures - 1)
                   + int(elapsed * 1000 // cooldown_ms) + 1)
        assert a_calls <= allowed, (a_calls, allowed, first_wave)
        assert a_calls >= failures
        results_for(s, f"br{n - 1}", batch)
        for w in workers:
            w.sigterm()
        for w in workers:
            assert w.wait(60) == 0


def test_rpm_limit_shared_by_two_workers():
    # rpm = 600 per "minute"; the tests shorten the minute to 6 s
    # (PROMPTYARD_TEST_RATE_PERIOD_MS), so the limit is 100 calls/s.
    period_ms, window_s = 6000, 12
    with two_provider_stack([model("a1", "a", 0.1)], timeout_ms=5000) as s:
        s.providers[0]["rpm"] = 600
        s.write_config()
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "latency_ms": 0}])
        produce(s, 4000, "rl")
        env = {"PROMPTYARD_TEST_RATE_PERIOD_MS": str(period_ms)}
        workers = [s.worker(name=f"w{k}", env=env) for k in range(2)]
        procs.wait_until(lambda: s.fake.stats()["requests"] >= 200, 60, interval=0.2)
        c0, t0 = s.fake.stats()["requests"], time.monotonic()
        time.sleep(window_s)  # the point of the test: the rate over a window
        c1, t1 = s.fake.stats()["requests"], time.monotonic()
        rate = (c1 - c0) / (t1 - t0)
        expected = 600 / (period_ms / 1000)
        assert abs(rate - expected) <= 0.05 * expected, (rate, expected)
        for w in workers:
            w.sigterm()
        for w in workers:
            assert w.wait(60) == 0


def test_fastest_follows_latency():
    models = [model("f1", "a", 0.1, latency_ms=300), model("f2", "b", 0.1, latency_ms=300)]
    with two_provider_stack(models, router={"window_s": 10},
                            worker={"default_strategy": "fastest"}) as s:
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "latency_ms": 100},
                          {"prefix": "/b/v1", "model": "*", "latency_ms": 500}])
        w = s.worker()
        stop = time.monotonic() + 60

        def feed(tag, seconds):
            end = time.monotonic() + seconds
            k = 0
            while time.monotonic() < end and time.monotonic() < stop:
                produce(s, 10, f"{tag}{k}")
                k += 1
                time.sleep(0.25)  # the stream's pace for `seconds`

        feed("warm", 8)
        before = s.fake.requests()
        a_before = sum(1 for q in before if q["prefix"] == "/a/v1")
        b_before = sum(1 for q in before if q["prefix"] == "/b/v1")
        assert a_before > 3 * b_before, (a_before, b_before)  # f1 is the fast one
        # f1 slows down to 2 s: within 10 s traffic has moved to f2.
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "latency_ms": 2000},
                          {"prefix": "/b/v1", "model": "*", "latency_ms": 500}])
        feed("shift", 10)
        mark = len(s.fake.requests())
        feed("after", 4)
        later = s.fake.requests()[mark:]
        a_after = sum(1 for q in later if q["prefix"] == "/a/v1")
        b_after = sum(1 for q in later if q["prefix"] == "/b/v1")
        assert b_after > 3 * a_after, (a_after, b_after)
        w.sigterm()
        assert w.wait(60) == 0


def test_auto_asks_the_classifier_as_attempt_zero():
    # A trivial prompt: the heuristic would pick the cheap model; the
    # classifier says 0.9, so auto must take the strong one.
    models = [model("cls", "a", 0.05, quality=0.3), model("cheap", "a", 0.1, quality=0.4),
              model("strong", "b", 2.0, quality=0.95)]
    with two_provider_stack(models, router={"classifier_model": "cls", "auto_floor": 0.3},
                            worker={"default_strategy": "auto"}) as s:
        answer = {"id": "chatcmpl-c", "object": "chat.completion", "created": 1, "model": "cls",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "0.9"},
                               "finish_reason": "stop"}],
                  "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42}}
        s.set_fake_rules([{"prefix": "/a/v1", "model": "cls", "status": 200,
                           "body": json.dumps(answer)},
                          {"prefix": "/a/v1", "model": "*", "latency_ms": 5},
                          {"prefix": "/b/v1", "model": "*", "latency_ms": 5}])
        produce(s, 5, "auto")
        w = s.worker()
        rs = results_for(s, "auto", 5)
        for r in rs:
            assert r["status"] == "ok", r
            assert [(a["model"], a["outcome"]) for a in r["attempts"]] == \
                [("cls", "ok"), ("strong", "ok")], r["attempts"]
            assert r["model"] == "strong"
        costs = [c for c in s.costs(timeout_s=5) if c["job_id"].startswith("auto-")]
        zero = [c for c in costs if c["attempt"] == 0]
        assert len(zero) == 5 and all(c["model"] == "cls" for c in zero)
        # 40 x 50 + 2 x 200 nano-USD per classifier call, charged to the job.
        assert all(c["cost_nusd"] == 40 * 50 + 2 * 200 for c in zero)
        for r in rs:
            job_costs = sum(c["cost_nusd"] for c in costs if c["job_id"] == r["id"])
            assert round(r["cost_usd"] * 1e9) == job_costs
        w.sigterm()
        assert w.wait(60) == 0


def classifier_answer(prompt_tokens=40, completion_tokens=2):
    """The fake classifier's answer: "0.9", with the usage given."""
    return json.dumps({"id": "chatcmpl-c", "object": "chat.completion", "created": 1,
                       "model": "cls",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "0.9"},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": prompt_tokens,
                                 "completion_tokens": completion_tokens,
                                 "total_tokens": prompt_tokens + completion_tokens}})


def spent_nusd(s, budget="default"):
    prefix = s.config["redis"]["key_prefix"]
    return int(s.redis.client().hget(f"{prefix}{{ledger}}:b:{budget}:all", "spent") or 0)


def leases_left(s):
    prefix = s.config["redis"]["key_prefix"]
    return s.redis.client().zcard(f"{prefix}{{ledger}}:leases")


def distinct_costs(s):
    """{(job_id, attempt): record}; the same key twice must be the same record."""
    out = {}
    for c in s.costs(timeout_s=5):
        key = (c["job_id"], c["attempt"])
        assert out.get(key, c)["cost_nusd"] == c["cost_nusd"], ("two costs for", key)
        out[key] = c
    return out


def test_classifier_calls_cannot_overspend_the_budget():
    # The budget covers a few classifier calls and no call of the two job
    # models: the classifier reserves like any attempt, so once the budget
    # cannot cover its estimate the jobs fall back to the heuristic (and
    # then end budget_exhausted). Spend never passes the limit, and every
    # classifier call is charged and reported.
    models = [model("cls", "a", 0.05, quality=0.3), model("big", "b", 2.0, quality=0.4),
              model("huge", "b", 3.0, quality=0.95)]
    limit_nusd = 50000  # a classifier call costs 2,400, its estimate about 12,000
    with two_provider_stack(models, router={"classifier_model": "cls"},
                            worker={"default_strategy": "auto"}) as s:
        s.config["budgets"] = [{"name": "default", "limit_usd": limit_nusd / 1e9,
                                "period": "none", "parent": ""}]
        s.write_config()
        s.set_fake_rules([{"prefix": "/a/v1", "model": "cls", "status": 200,
                           "body": classifier_answer()},
                          {"prefix": "/b/v1", "model": "*", "latency_ms": 5}])
        n = 40
        produce(s, n, "ovr", {"models": ["big", "huge"]})
        w = s.worker()
        rs = results_for(s, "ovr", n)
        bad = [r for r in rs if r["status"] != "error" or r["error"]["code"] != "budget_exhausted"]
        assert not bad, bad[:3]
        procs.wait_until(lambda: leases_left(s) == 0, 30, interval=0.5, what="no lease left")
        spent = spent_nusd(s)
        assert spent <= limit_nusd, (spent, limit_nusd)
        costs = distinct_costs(s)
        assert sum(c["cost_nusd"] for c in costs.values()) == spent
        cls_calls = calls_at(s, "/a/v1")
        assert 1 <= cls_calls < n, cls_calls  # some jobs could not afford the classifier
        assert len([c for c in costs.values() if c["model"] == "cls"]) == cls_calls
        assert calls_at(s, "/b/v1") == 0
        w.sigterm()
        assert w.wait(60) == 0


def test_classifier_asked_again_after_a_crash_is_charged_again():
    # Worker A's classifier calls hang; A is killed with them in flight. B
    # takes the jobs again and asks the classifier again. A's calls were
    # reserved: their leases are reaped (charged at the estimate, reported
    # "estimated"); B's are charged at their cost. Both calls of every job
    # are in the ledger and in the cost records.
    models = [model("cls", "a", 0.05, quality=0.3), model("cheap", "a", 0.1, quality=0.4),
              model("strong", "b", 2.0, quality=0.95)]
    with two_provider_stack(models, timeout_ms=3000,
                            router={"classifier_model": "cls", "auto_floor": 0.3},
                            worker={"default_strategy": "auto"}) as s:
        answer = [{"prefix": "/a/v1", "model": "cls", "status": 200, "body": classifier_answer()},
                  {"prefix": "/a/v1", "model": "*", "latency_ms": 5},
                  {"prefix": "/b/v1", "model": "*", "latency_ms": 5}]
        s.set_fake_rules(answer)
        a = s.worker(name="worker-a")
        # A first round answered: the worker is up and the models warm.
        produce(s, 2, "warm")
        results_for(s, "warm", 2)
        s.set_fake_rules([{"prefix": "/a/v1", "model": "cls", "hang": True}] + answer[1:])
        n = 5
        produce(s, n, "crash")
        procs.wait_until(lambda: s.fake.stats()["suspended"] >= n, 60, interval=0.1,
                         what=f"{n} classifier calls held")
        a.sigkill()
        s.set_fake_rules(answer)
        s.fake.release()
        b = s.worker(name="worker-b")
        rs = results_for(s, "crash", n, timeout_s=90)
        for r in rs:
            assert r["status"] == "ok", r
            assert [x["model"] for x in r["attempts"]] == ["cls", "strong"], r["attempts"]
        # A's leases expire (timeout 3 s + 15 s) and are reaped by B.
        procs.wait_until(lambda: leases_left(s) == 0, 60, interval=0.5,
                         what="A's leases reaped")
        costs = distinct_costs(s)
        assert sum(c["cost_nusd"] for c in costs.values()) == spent_nusd(s)
        for i in range(n):
            mine = sorted((c["attempt"], c["model"], c["estimated"])
                          for (job, _), c in costs.items() if job == f"crash-{i}")
            assert [(m, e) for _, m, e in mine] == \
                [("cls", True), ("cls", False), ("strong", False)], mine
            assert mine[0][0] == 0  # A's call was the job's attempt 0
        b.sigterm()
        assert b.wait(60) == 0
