"""Delivery guarantees (issue 3, SPEC §9): thousands in flight, rebalances,
crashes, broker outages and SIGTERM drains lose no job and buy none twice
beyond what the SPEC allows."""
import json
import time
from datetime import datetime, timezone

from tests.lib import procs
from tests.lib.kafkautil import consume_all, produce as produce_to
from tests.lib.stack import Stack, end_offsets

TIMEOUT = 400

MODEL = {"name": "mini", "provider": "openai", "id": "gpt-4o-mini", "input_usd_per_mtok": 0.15,
         "cached_input_usd_per_mtok": 0.075, "output_usd_per_mtok": 0.60, "context_tokens": 128000,
         "default_max_tokens": 32, "quality": 0.62, "latency_ms": 800}


def stack(partitions=8, latency_ms=0, max_in_flight=1000, connections=256, timeout_ms=30000,
          **kw):
    s = Stack(partitions=partitions, models=[dict(MODEL)], providers=[], **kw)
    s.providers[:] = [{"name": "openai", "type": "openai", "base_url": s.fake.url("/openai/v1"),
                       "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": timeout_ms,
                       "max_connections": connections}]
    s.config["providers"] = s.providers
    s.config["worker"].update({"max_in_flight": max_in_flight, "metrics_listen": "",
                               "drain_timeout_ms": 30000})
    # librdkafka 2.0.2's mock coordinator ends a rebalance of a live group only
    # when its timer fires, at session.timeout.ms - 1 s (44 s by default); a
    # real broker moves on once every member rejoined. Keep it short here.
    s.config["kafka"]["properties"] = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]
    s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": latency_ms}])
    s.write_config()
    return s


def jobs(n, prefix="j"):
    return [json.dumps({"id": f"{prefix}-{i}", "prompt": f"document {i}"}).encode() for i in range(n)]


def produce(s, n, prefix="j"):
    """n jobs keyed by id, so that they spread over every partition."""
    s.produce_jobs(jobs(n, prefix), keys=[f"{prefix}-{i}".encode() for i in range(n)])


def all_committed(s):
    ends = end_offsets(s.bootstrap, s.jobs_topic)
    return {p: (c if c is not None else 0) for p, c in s.committed().items()} == ends


def assert_all_committed(s):
    """The group's committed offset is the end of every partition (an empty
    partition has nothing to commit)."""
    ends = end_offsets(s.bootstrap, s.jobs_topic)
    committed = {p: (c if c is not None else 0) for p, c in s.committed().items()}
    assert committed == ends, (committed, ends)


def calls(s):
    return sum(1 for q in s.fake.requests() if q["status"] == 200)


def ok_ids(results):
    return {r["id"] for r in results if r["status"] == "ok"}


def wait_results(s, n, timeout_s):
    """Distinct ids with an ok result, polled until n are in; fewer when
    timeout_s passes first (the caller's assert says how many)."""
    seen = set()

    def all_in():
        seen.clear()
        seen.update(ok_ids(s.results(timeout_s=5)))
        return len(seen) >= n

    try:
        procs.wait_until(all_in, timeout_s, interval=1, what=f"{n} ok results")
    except TimeoutError:
        pass
    return seen


def spent(s):
    prefix = s.config["redis"]["key_prefix"]
    v = s.redis.client().hget(f"{prefix}{{ledger}}:b:default:all", "spent")
    return int(v or 0)


def leases_left(s):
    prefix = s.config["redis"]["key_prefix"]
    return s.redis.client().zcard(f"{prefix}{{ledger}}:leases")


def check_costs_match_spend(s, timeout_s=90):
    """SPEC §4: spent is the sum of cost_nusd over distinct (job_id, attempt).
    It holds once no lease is open: a killed worker's leases are charged (and
    their records published) only when another worker reaps them, after they
    expire, and a reaped lease leaves the index only once its record is in
    Kafka."""
    procs.wait_until(lambda: leases_left(s) == 0, timeout_s, interval=0.5,
                     what="every lease settled, released or reaped")
    costs = {}
    for c in s.costs(timeout_s=10):
        key = (c["job_id"], c["attempt"])
        assert costs.get(key, c)["cost_nusd"] == c["cost_nusd"], ("two costs for", key)
        costs[key] = c
    total = sum(c["cost_nusd"] for c in costs.values())
    assert total == spent(s), (total, spent(s))
    return costs


def test_second_worker_joins_halfway():
    with stack(partitions=8, latency_ms=300, max_in_flight=500, connections=500) as s:
        produce(s, 5000)
        a = s.worker(name="worker-a")
        procs.wait_until(lambda: calls(s) >= 2500, 120, interval=0.5, what="half the calls")
        b = s.worker(name="worker-b")
        got = wait_results(s, 5000, 240)
        assert len(got) == 5000, len(got)
        # Both took part: the rebalance really happened.
        procs.wait_until(lambda: b.wait_log("partition assigned", timeout=1), 30)
        n = calls(s)
        # Revoked partitions drain before they are released: at most the
        # jobs in flight at the rebalance (<= max_in_flight) are called twice.
        assert n <= 5000 + 500, n
        costs = check_costs_match_spend(s)
        assert len(costs) == n  # one cost record per call that happened
        # The running workers commit every finished job. (Not checked after
        # stopping both at once: their two leaves start a rebalance, during
        # which librdkafka's mock coordinator refuses every commit with
        # REBALANCE_IN_PROGRESS, where a real broker takes a commit of the
        # current generation while preparing a rebalance.)
        procs.wait_until(lambda: all_committed(s), 30, interval=0.5, what="every offset committed")
        for w in (a, b):
            w.sigterm()
        for w in (a, b):
            assert w.wait(60) == 0, w.log_text()[-2000:]
        assert_all_committed(s)


def test_sigkill_three_times():
    # A 5 s call timeout: the killed workers' leases (timeout + 15 s) expire
    # and are reaped within the test.
    with stack(partitions=8, latency_ms=200, max_in_flight=300, connections=300,
               timeout_ms=5000) as s:
        produce(s, 5000)
        w = s.worker(name="worker-0")
        for k in range(3):
            target = 1000 * (k + 1)
            procs.wait_until(lambda: calls(s) >= target, 120, interval=0.2, what=f"{target} calls")
            w.sigkill()
            w.wait(10)
            w = s.worker(name=f"worker-{k + 1}")
        got = wait_results(s, 5000, 240)
        assert len(got) == 5000, len(got)
        n = calls(s)
        # Each kill can cost at most the calls in flight then (max_in_flight).
        assert n <= 5000 + 3 * 300, n
        costs = check_costs_match_spend(s)
        # No cost record for a call that did not happen. A killed worker's
        # leases are charged at their estimates when reaped (SPEC §7: whether
        # the call went out is not known), marked "estimated"; at most the
        # calls that were in flight at the kills.
        settled = [c for c in costs.values() if not c["estimated"]]
        reaped = [c for c in costs.values() if c["estimated"]]
        assert len(settled) <= n, (len(settled), n)
        assert len(reaped) <= 3 * 300, len(reaped)
        w.sigterm()
        assert w.wait(60) == 0


def test_brokers_down_ten_seconds():
    with stack(partitions=4, latency_ms=50, max_in_flight=200, connections=200) as s:
        produce(s, 3000)
        w = s.worker()
        procs.wait_until(lambda: calls(s) >= 800, 120, interval=0.2, what="800 calls")
        s.cluster.down_all()
        time.sleep(10)  # the point of the test: every broker down for 10 s
        s.cluster.up_all()
        got = wait_results(s, 3000, 240)
        assert len(got) == 3000, len(got)
        # Outputs waiting on the brokers were reported, not waited for silently.
        assert "outputs not acknowledged by Kafka" in w.log_text()
        check_costs_match_spend(s)
        w.sigterm()
        assert w.wait(90) == 0, w.log_text()[-3000:]
        assert_all_committed(s)


def connections_to(port):
    """Established TCP connections whose far end is 127.0.0.1:port (the
    clients' side of them)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.split(":")[1], 16) == port:
                n += 1
    return n


def test_sigterm_drains_1000_in_flight():
    # The latency outlasts the time 1000 calls take to reach the fake on a
    # loaded machine (2 s did not, with other work on the two cores), so all
    # of them are still held when they are counted.
    with stack(partitions=4, latency_ms=8000, max_in_flight=1000, connections=1000) as s:
        produce(s, 1000)
        w = s.worker()
        # All 1000 are at the provider, none answered yet.
        procs.wait_until(lambda: s.fake.stats()["requests"] >= 1000, 60, interval=0.1,
                         what="1000 requests in flight")
        assert len(s.results(timeout_s=1)) < 1000
        # One HTTP/1.1 call per connection, spread over four curl pools of
        # 250: a connection for each call held, never more than max_connections.
        seen = [connections_to(s.fake.port) for _ in range(10)]
        held = s.fake.stats()["suspended"]  # calls waiting out their latency
        assert held >= 990 and held <= min(seen) and max(seen) <= 1000, (held, seen)
        t0 = time.monotonic()
        w.sigterm()
        assert w.wait(60) == 0, w.log_text()[-2000:]
        assert time.monotonic() - t0 < 30 + 5  # within drain_timeout_ms (and some slack)
        assert len(ok_ids(s.results(1000, timeout_s=30))) == 1000
        assert_all_committed(s)
        before = calls(s)
        w2 = s.worker(name="restarted")
        # One more job at the end of every partition: once all four are
        # answered, whatever the restart could have read again (it stands
        # before them in its partition, so it was called first) is counted.
        for p in range(4):
            produce_to(s.bootstrap, s.jobs_topic, jobs(1, f"after{p}"), partition=p)
        assert len(wait_results(s, 1004, 60)) == 1004
        assert calls(s) == before + 4  # nothing is called again
        w2.sigterm()
        assert w2.wait(60) == 0


def test_calls_fill_every_connection_of_a_sharded_provider():
    # 600 connections are three curl pools of 200 (engine_pools.c, POOL_CONNECTIONS):
    # with more jobs than connections every pool is kept full, and no call
    # waits inside curl for a connection while another pool has one free.
    with stack(partitions=2, latency_ms=3000, max_in_flight=1000, connections=600) as s:
        produce(s, 800)
        w = s.worker()
        procs.wait_until(lambda: s.fake.stats()["suspended"] >= 600, 60, interval=0.05,
                         what="600 calls held at the provider")
        for _ in range(10):  # ten samples over half a second, not a wait
            assert s.fake.stats()["suspended"] <= 600
            assert connections_to(s.fake.port) <= 600
            time.sleep(0.05)
        assert len(ok_ids(s.results(800, timeout_s=60))) == 800
        w.sigterm()
        assert w.wait(60) == 0


def test_redelivered_jobs_are_not_bought_again():
    with stack(partitions=2, latency_ms=0) as s:
        produce(s, 200, "d")
        w = s.worker()
        assert len(wait_results(s, 200, 60)) == 200
        first = calls(s)
        assert first == 200
        # The same ids again (a replay of the input): done jobs are skipped.
        produce(s, 200, "d")
        procs.wait_until(lambda: all_committed(s), 60, interval=0.5, what="second batch committed")
        assert calls(s) == first
        assert len(s.results(timeout_s=5)) == 200  # no second result either
        # Copies that would end before their first reservation (past their
        # deadline, or pinned to a model that does not exist) are looked up
        # all the same: no `expired` or `no_eligible_model` after an ok.
        late = [json.dumps({"id": "d-1", "prompt": "again", "deadline": "2001-01-01T00:00:00Z"}),
                json.dumps({"id": "d-2", "prompt": "again", "models": ["mini"],
                            "max_cost_usd": 0.000000001})]
        s.produce_jobs([v.encode() for v in late])
        procs.wait_until(lambda: all_committed(s), 60, interval=0.5, what="late copies committed")
        assert len(s.results(timeout_s=5)) == 200
        assert calls(s) == first

        # A finished job whose result was not acknowledged: re-sent from Redis.
        prefix = s.config["redis"]["key_prefix"]
        r = s.redis.client()
        stored = {"id": "p-1", "status": "ok", "content": "kept", "finish_reason": "stop",
                  "model": "mini", "provider": "openai",
                  "usage": {"input_tokens": 3, "output_tokens": 2, "cached_input_tokens": 0},
                  "cost_usd": 0.00000165, "budget": "default", "attempts": [], "latency_ms": 5,
                  "metadata": {}, "worker": "w", "completed_at": "2026-11-22T03:00:00.000Z"}
        cost = {"job_id": "p-1", "attempt": 1, "provider": "openai", "model": "mini",
                "budget": "default", "input_tokens": 3, "output_tokens": 2,
                "cached_input_tokens": 0, "cost_nusd": 1650, "cost_usd": 0.00000165,
                "estimated": False, "ts": "2026-11-22T03:00:00.000Z"}
        r.hset(f"{prefix}{{ledger}}:job:p-1",
               mapping={"state": "pending", "attempts": 1,
                        "outputs": json.dumps(stored) + "\n" + json.dumps(cost)})
        s.produce_jobs([json.dumps({"id": "p-1", "prompt": "again"}).encode()])
        procs.wait_until(lambda: any(x["id"] == "p-1" for x in s.results(timeout_s=2)), 30)
        res = [x for x in s.results(timeout_s=2) if x["id"] == "p-1"]
        assert res == [stored]
        assert [c for c in s.costs(timeout_s=2) if c["job_id"] == "p-1"] == [cost]
        assert calls(s) == first
        procs.wait_until(lambda: r.hget(f"{prefix}{{ledger}}:job:p-1", "state") == b"done", 10)

        # The day's job counts (the dashboard's): each job once, a copy
        # skipped as done not at all, the one re-sent from Redis once.
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")

        def job_counts():
            stats = r.hgetall(f"{prefix}{{ledger}}:stats:d:{day}")
            return {k.decode(): int(v) for k, v in stats.items() if k.startswith(b"jobs:")}
        try:
            procs.wait_until(lambda: job_counts() == {"jobs:ok": 201}, 10)
        except TimeoutError:
            pass
        assert job_counts() == {"jobs:ok": 201}
        w.sigterm()
        assert w.wait(60) == 0


def test_copies_in_flight_together_are_one_job():
    with stack(partitions=3, latency_ms=500) as s:
        # Each id three times, in different partitions, all consumed at once.
        values, keys = [], []
        for copy in range(3):
            for i in range(50):
                values.append(json.dumps({"id": f"twin-{i}", "prompt": f"doc {i}"}).encode())
                keys.append(f"{copy}-{i}".encode())
        s.produce_jobs(values, keys=keys)
        w = s.worker()
        procs.wait_until(lambda: all_committed(s), 60, interval=0.5, what="all copies done")
        assert calls(s) == 50
        results = s.results(timeout_s=5)
        assert sorted(r["id"] for r in results) == sorted(f"twin-{i}" for i in range(50))
        w.sigterm()
        assert w.wait(60) == 0


def test_producer_rebuilt_after_fatal_error():
    with stack(partitions=4, latency_ms=20, max_in_flight=300, connections=300) as s:
        produce(s, 1500, "f")
        w = s.worker(env={"PROMPTYARD_TEST_FATAL_PRODUCER_AFTER": "500"})
        got = wait_results(s, 1500, 120)
        assert len(got) == 1500, len(got)
        w.wait_log("kafka producer rebuilt after a fatal error", timeout=5)
        # The old producer is destroyed off the loop, after the rebuild.
        w.wait_log("old kafka producer destroyed", timeout=30)
        msgs = [ln.get("msg") for ln in w.log_lines()]
        assert msgs.index("kafka producer rebuilt after a fatal error") < \
            msgs.index("old kafka producer destroyed"), msgs
        assert calls(s) == 1500  # outputs are produced again, calls are not
        check_costs_match_spend(s)
        w.sigterm()
        assert w.wait(60) == 0
        assert_all_committed(s)


def test_drain_timeout_leaves_unfinished_jobs_to_run_again():
    # Calls that hang past worker.drain_timeout_ms: the drain gives up on
    # them, nothing of those jobs is committed, the worker exits 0 (SPEC §9:
    # that is the drain working) and the next worker does them all.
    with stack(partitions=2, timeout_ms=3000) as s:
        s.config["worker"]["drain_timeout_ms"] = 1000
        s.write_config()
        s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "hang": True}])
        produce(s, 20, "dt")
        w = s.worker()
        procs.wait_until(lambda: s.fake.stats()["suspended"] >= 1, 60, interval=0.1,
                         what="a call held at the provider")
        w.sigterm()
        assert w.wait(60) == 0, w.log_text()[-3000:]
        w.wait_log("drain timeout: leaving unfinished jobs to be consumed again", timeout=1)
        assert s.results(timeout_s=2) == []
        s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": 0}])
        s.fake.release()
        w2 = s.worker(name="again")
        assert len(wait_results(s, 20, 90)) == 20
        w2.sigterm()
        assert w2.wait(60) == 0


def test_stop_with_outputs_kafka_never_took_exits_1():
    # The jobs are answered while the brokers are away: their outputs wait in
    # the producer. SIGTERM: the drain times out, the producer cannot flush,
    # and the stop failed (exit 1). Once the brokers are back, the next
    # worker re-sends those outputs from Redis without buying them again.
    n = 30
    with stack(partitions=2) as s:
        s.config["worker"]["drain_timeout_ms"] = 1000
        s.write_config()
        w = s.worker()
        produce(s, 2, "warm")  # a warm model takes calls at full concurrency
        assert len(wait_results(s, 2, 60)) == 2
        s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "latency_ms": 3000}])
        produce(s, n, "nf")
        procs.wait_until(lambda: s.fake.stats()["suspended"] >= n, 60, interval=0.1,
                         what=f"{n} calls held at the provider")
        s.cluster.down_all()
        procs.wait_until(lambda: s.fake.stats()["suspended"] == 0, 30, interval=0.1,
                         what="every call answered")
        time.sleep(1)  # settled, outputs handed to the producer
        w.sigterm()
        try:
            assert w.wait(90) == 1, w.log_text()[-3000:]
        finally:
            s.cluster.up_all()
        w.wait_log("kafka producer not flushed: outputs left unacknowledged", timeout=1)
        w2 = s.worker(name="after")
        got = wait_results(s, n + 2, 120)
        assert {f"nf-{i}" for i in range(n)} <= got
        assert calls(s) == n + 2  # re-sent from Redis, not bought again
        w2.sigterm()
        assert w2.wait(60) == 0


def test_billed_attempts_of_a_crashed_run_keep_their_cost_records():
    """A billed attempt that did not answer (here: content that breaks the
    job's schema, invalid_output) is settled at once; the job goes on to its
    next model, whose call the worker is killed in. The next run of the job
    must still publish that first attempt's cost record, kept in Redis since
    its settle: otherwise the ledger holds a charge no record shows (SPEC §4)."""
    s = Stack(partitions=1, providers=[], models=[
        {"name": "breaks", "provider": "openai", "id": "gpt-4o-mini", "input_usd_per_mtok": 0.15,
         "output_usd_per_mtok": 0.60, "default_max_tokens": 64, "quality": 0.9,
         "capabilities": ["json", "json_schema"]},
        {"name": "slow", "provider": "anthropic", "id": "claude-haiku", "input_usd_per_mtok": 1.0,
         "output_usd_per_mtok": 5.0, "default_max_tokens": 64, "quality": 0.5,
         "capabilities": ["json", "json_schema", "tools"]}])
    with s:
        s.providers[:] = [
            {"name": "openai", "type": "openai", "base_url": s.fake.url("/openai/v1"),
             "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": 60000},
            {"name": "anthropic", "type": "anthropic", "base_url": s.fake.url("/anthropic/v1"),
             "api_key_env": "FAKE_ANTHROPIC_KEY", "timeout_ms": 10000}]
        s.config["providers"] = s.providers
        s.config["worker"].update({"metrics_listen": "", "default_strategy": "cheapest"})
        s.config["kafka"]["properties"] = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]
        s.set_fake_rules([
            {"prefix": "/openai/v1", "model": "*", "break_schema_share": 1.0},
            {"prefix": "/anthropic/v1", "model": "*", "latency_ms": 60000}])
        s.write_config()
        schema = {"type": "object", "properties": {"total": {"type": "number"}},
                  "required": ["total"], "additionalProperties": False}
        # One job: one held call is all this needs.
        n = 1
        s.produce_jobs([json.dumps({
            "id": f"k-{i}", "prompt": f"invoice {i}", "strategy": "balanced",
            "models": ["breaks", "slow"],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "inv", "schema": schema}}}).encode()
            for i in range(n)])
        w = s.worker()
        # The job's first attempt broke the schema (billed, settled) and its
        # second is held at the slow provider: kill the worker there.
        procs.wait_until(lambda: s.fake.stats()["by_prefix"].get("/anthropic/v1", 0) >= n, 60,
                         interval=0.2, what="the job's second call held")
        w.sigkill()
        w.wait(10)
        s.set_fake_rules([
            {"prefix": "/openai/v1", "model": "*", "break_schema_share": 1.0},
            {"prefix": "/anthropic/v1", "model": "*", "latency_ms": 0}])
        w2 = s.worker(name="second")
        assert len(wait_results(s, n, 120)) == n
        costs = check_costs_match_spend(s, timeout_s=120)
        # Each job: the first run's invalid_output attempt, the second run's
        # own attempts and the killed call's lease, reaped at its estimate.
        for i in range(n):
            mine = [c for (j, _), c in costs.items() if j == f"k-{i}"]
            assert any(c["model"] == "breaks" and not c["estimated"] for c in mine), mine
        w2.sigterm()
        assert w2.wait(60) == 0
