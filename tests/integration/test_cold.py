"""A fleet's first run and what a provider's answer may park (SPEC §6, its
last paragraph; issue 14): a model with no observations is called at full
concurrency, so a healthy cold model costs no extra latency and a cold model
that hangs costs each job one timeout_ms before its failover, not
breaker_failures timeouts in a row; a provider down from the start still
gets a bounded number of calls before its shared circuit opens; and a
Retry-After longer than worker.max_retry_after_ms parks nothing longer.

Bounds are tied to the configured timeouts and latencies, with a slack
below one more timeout (or latency): what they tell apart is one wait
against two or more in a row, not how fast the machine is."""
from tests.integration.test_routing import (calls_at, model, produce, results_for,
                                            two_provider_stack)

TIMEOUT = 300


def attempts(r):
    return [(a["model"], a["outcome"]) for a in r["attempts"]]


def test_a_cold_model_that_hangs_costs_each_job_one_timeout():
    # a1 accepts every call and never answers; b1 answers in 50 ms. Nothing
    # has been observed of either. 400 jobs, 200 connections to each: the
    # first 200 calls go to a1 at once; the other 200 wait for a slot and,
    # when the first ones time out, stay off a1 (its wave is failing) while
    # the breaker opens on the wave's failures.
    timeout_ms, fallback_ms, connections, n = 4000, 50, 200, 400
    slack_ms = 3000  # below one more timeout: two in a row cannot pass
    with two_provider_stack([model("a1", "a", 0.1), model("b1", "b", 1.0)],
                            timeout_ms=timeout_ms, connections=connections) as s:
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "hang": True},
                          {"prefix": "/b/v1", "model": "*", "latency_ms": fallback_ms}])
        produce(s, n, "hang")
        w = s.worker()
        rs = results_for(s, "hang", n, timeout_s=120)
        timed_out = 0
        for r in rs:
            assert r["status"] == "ok" and r["model"] == "b1", r
            # Met a1's timeout, or was kept off a1 by its failing wave
            # (circuit_open), or routed once its circuit was open.
            assert attempts(r) in ([("a1", "timeout"), ("b1", "ok")],
                                   [("a1", "circuit_open"), ("b1", "ok")],
                                   [("b1", "ok")]), attempts(r)
            assert r["latency_ms"] <= timeout_ms + fallback_ms + slack_ms, \
                (r["id"], r["latency_ms"], attempts(r))
            timed_out += ("a1", "timeout") in attempts(r)
        # The first wave went out whole, at full concurrency, and every call
        # a1 got was one job's only call to it.
        stats = s.fake.stats()
        assert stats["suspended_max"] >= connections, stats["suspended_max"]
        a_calls = calls_at(s, "/a/v1")
        assert connections <= a_calls <= n, a_calls
        assert timed_out == a_calls, (timed_out, a_calls)
        w.sigterm()
        assert w.wait(60) == 0


def test_a_healthy_cold_model_takes_its_first_wave_at_once():
    latency_ms, n = 3000, 100
    slack_ms = 2500  # below one more latency: a call held back for another's would not pass
    with two_provider_stack([model("a1", "a", 0.1)], timeout_ms=20000) as s:
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "latency_ms": latency_ms}])
        produce(s, n, "cold")
        w = s.worker()
        rs = results_for(s, "cold", n, timeout_s=120)
        for r in rs:
            assert r["status"] == "ok" and attempts(r) == [("a1", "ok")], r
            assert r["latency_ms"] <= latency_ms + slack_ms, (r["id"], r["latency_ms"])
        assert s.fake.stats()["suspended_max"] >= n
        w.sigterm()
        assert w.wait(60) == 0


def test_a_provider_down_from_the_start_gets_a_bounded_number_of_calls():
    # a1 answers 500 at once. Called at full concurrency, it gets the calls
    # its pool takes at once (16 connections); the calls queued behind them
    # stay off it once they fail, and the breaker opens on their failures,
    # for every worker: jobs after that never call it.
    connections, failures, n = 16, 5, 400
    with two_provider_stack([model("a1", "a", 0.1), model("b1", "b", 1.0)],
                            connections=connections,
                            router={"breaker_failures": failures}) as s:
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "status": 500},
                          {"prefix": "/b/v1", "model": "*", "latency_ms": 5}])
        produce(s, n, "down")
        w = s.worker()
        rs = results_for(s, "down", n, timeout_s=120)
        for r in rs:
            assert r["status"] == "ok" and r["model"] == "b1", r
            assert attempts(r) in ([("a1", "http_500"), ("b1", "ok")],
                                   [("a1", "circuit_open"), ("b1", "ok")],
                                   [("b1", "ok")]), attempts(r)
        a_calls = calls_at(s, "/a/v1")
        assert failures <= a_calls <= connections + failures, a_calls
        # The circuit is open in Redis, for the whole fleet.
        prefix = s.config["redis"]["key_prefix"]
        open_until = s.redis.client().hget(f"{prefix}{{health}}:c:a1", "open_until")
        assert int(open_until or 0) > 0
        produce(s, 50, "after")
        for r in results_for(s, "after", 50):
            assert attempts(r) == [("b1", "ok")], attempts(r)  # routed past the open circuit
        assert calls_at(s, "/a/v1") == a_calls
        w.sigterm()
        assert w.wait(60) == 0


def test_retry_after_is_capped_at_max_retry_after_ms():
    # One model, retried once on a 429. Its first call gets a 429 asking for
    # a day (Retry-After: 86400). With max_retry_after_ms 1000 neither the
    # job's retry nor the provider's throttle waits longer than a second.
    cap_ms, slack_ms = 1000, 5000
    with two_provider_stack([model("a1", "a", 0.1)],
                            worker={"retry_same": 1, "max_retry_after_ms": cap_ms}) as s:
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "status": 429,
                           "retry_after_s": 86400, "fail_first": 1}])
        produce(s, 5, "ra")
        w = s.worker()
        rs = results_for(s, "ra", 5, timeout_s=60)
        kinds = sorted(attempts(r) for r in rs)
        assert kinds == [[("a1", "http_429"), ("a1", "ok")]] + [[("a1", "ok")]] * 4, kinds
        for r in rs:
            assert r["status"] == "ok" and r["latency_ms"] <= cap_ms + slack_ms, r
        # The provider is called again: later jobs go through.
        produce(s, 5, "ra2")
        for r in results_for(s, "ra2", 5, timeout_s=60):
            assert r["status"] == "ok" and attempts(r) == [("a1", "ok")], r
            assert r["latency_ms"] <= cap_ms + slack_ms, r
        assert calls_at(s, "/a/v1") == 11
        w.sigterm()
        assert w.wait(60) == 0
