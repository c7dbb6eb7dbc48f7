"""Rebalances with jobs in flight (issue 14 item 4, SPEC §9): a revoke whose
drain times out and a lost assignment release partitions whose jobs are
still running; those jobs end later, possibly while another revoke waits.
The worker must not touch a released partition's state after its last job
(the sanitizer build catches it), and every job still ends ok."""
import json
import time

from tests.lib import procs
from tests.lib.stack import Stack

TIMEOUT = 300

MODEL = {"name": "mini", "provider": "openai", "id": "gpt-4o-mini", "input_usd_per_mtok": 0.15,
         "cached_input_usd_per_mtok": 0.075, "output_usd_per_mtok": 0.60, "context_tokens": 128000,
         "default_max_tokens": 32, "quality": 0.62, "latency_ms": 800}

HANG = [{"prefix": "/openai/v1", "model": "*", "hang": True}]
ANSWER = [{"prefix": "/openai/v1", "model": "*", "latency_ms": 0}]


def stack(drain_timeout_ms, partitions=6):
    s = Stack(partitions=partitions, models=[dict(MODEL)], providers=[])
    s.providers[:] = [{"name": "openai", "type": "openai", "base_url": s.fake.url("/openai/v1"),
                       "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": 120000,
                       "max_connections": 1000}]
    s.config["providers"] = s.providers
    # A call cut by the fake's release is tried once more on the same model,
    # whose circuit the hundreds of cut calls must not open.
    s.config["worker"].update({"metrics_listen": "", "drain_timeout_ms": drain_timeout_ms,
                               "retry_same": 1})
    s.config["router"]["breaker_failures"] = 100000
    # The mock coordinator ends a rebalance at session.timeout.ms - 1 s
    # (see test_delivery.py): keep it short.
    s.config["kafka"]["properties"] = ["session.timeout.ms=6000", "heartbeat.interval.ms=500"]
    s.write_config()
    return s


def start_holding(s, n, prefix):
    """Starts worker-a, has it answer a first round (it is up and assigned),
    then has it hold n jobs at the provider."""
    s.set_fake_rules(ANSWER)
    a = s.worker(name="worker-a")
    produce(s, 3, "warm")
    all_ok(s, "warm", 3, 60)
    s.set_fake_rules(HANG)
    produce(s, n, prefix)
    procs.wait_until(lambda: s.fake.stats()["suspended"] >= n, 60, interval=0.2,
                     what="every job held at the provider")
    return a


def produce(s, n, prefix):
    jobs = [json.dumps({"id": f"{prefix}-{i}", "prompt": f"document {i}"}).encode()
            for i in range(n)]
    s.produce_jobs(jobs, keys=[f"{prefix}-{i}".encode() for i in range(n)])


def count_logs(w, msg):
    return sum(1 for d in w.log_lines() if d.get("msg") == msg)


def all_ok(s, prefix, n, timeout_s):
    """Waits until every id has a result; then every result of every id is ok
    (copies run by two workers are allowed: dedupe is by id)."""
    want = {f"{prefix}-{i}" for i in range(n)}

    def done():
        rs = [r for r in s.results(timeout_s=3) if r["id"] in want]
        return rs if {r["id"] for r in rs} == want else None
    rs = procs.wait_until(done, timeout_s, interval=1, what=f"a result for each of {n} jobs")
    bad = [r for r in rs if r["status"] != "ok"]
    assert not bad, bad[:3]


def stop_all(workers):
    """SIGTERM to each once it has its partitions (librdkafka 2.0.2 aborts in
    rd_kafka_sticky_assignor_state_destroy when a consumer closes before its
    first assignment), then each must exit 0 with no sanitizer report."""
    for w in workers:
        w.wait_log("partition assigned", timeout=60)
    for w in workers:
        w.sigterm()
    for w in workers:
        assert_clean_exit(w)


def assert_clean_exit(w):
    assert w.wait(60) == 0, w.log_text()[-3000:]
    assert "AddressSanitizer" not in w.log_text(), w.log_text()[-6000:]


def test_revoke_drain_timeout_with_jobs_in_flight():
    # A holds every job at the provider. B joins: A's revoke of some
    # partitions times out (2 s) and releases them with their jobs running.
    # C joins: A revokes again, and while that revoke waits for its jobs the
    # calls are answered, so the released partitions' jobs end during it.
    with stack(drain_timeout_ms=2000) as s:
        n = 300
        a = start_holding(s, n, "rv")
        b = s.worker(name="worker-b")
        a.wait_log("revoke drain timeout: releasing partitions with jobs in flight", timeout=60)
        revoked = count_logs(a, "partition revoked")
        c = s.worker(name="worker-c")
        procs.wait_until(lambda: count_logs(a, "partition revoked") > revoked, 60, interval=0.05,
                         what="a second revoke on worker-a")
        # A's second revoke waits (its jobs hang): answer everything now.
        s.set_fake_rules(ANSWER)
        s.fake.release()
        all_ok(s, "rv", n, 120)
        assert a.running(), a.log_text()[-6000:]
        stop_all((a, b, c))


def test_lost_partitions_with_jobs_in_flight():
    # A holds every job at the provider. The brokers go away for longer than
    # the session timeout: A's assignment is lost with the jobs running. The
    # brokers come back, A is assigned again, B joins and A's revoke waits
    # for its jobs (30 s). The calls are answered then: the lost partitions'
    # jobs end while that revoke waits.
    with stack(drain_timeout_ms=30000) as s:
        n = 300
        a = start_holding(s, n, "lo")
        s.cluster.down_all()
        try:
            a.wait_log("partition lost", timeout=60)
        finally:
            s.cluster.up_all()
        assigned = count_logs(a, "partition assigned")
        procs.wait_until(lambda: count_logs(a, "partition assigned") > assigned, 60,
                         interval=0.2, what="worker-a assigned again")
        b = s.worker(name="worker-b")
        a.wait_log("partition revoked", timeout=60)
        s.set_fake_rules(ANSWER)
        s.fake.release()
        all_ok(s, "lo", n, 180)
        assert a.running(), a.log_text()[-6000:]
        stop_all((a, b))
