"""Redis Sentinel and ACL users (SPEC §15, issue 18): the worker finds the
master through real sentinels, follows a failover after the primary is
SIGKILLed mid-run, and with its ledger steps acknowledged by a replica
(WAIT) loses no reservation and no charge; the worker and the command line
log in as an ACL user, and a wrong password is an error that names the user
and never the password."""
import json
import subprocess
import threading
import time

from tests.integration.test_budget import (budget_show, budget_stack, calls_that_fit,
                                           distinct_costs, final_results, produce)
from tests.lib import procs
from tests.lib.sentinel import SentinelCluster
from tests.lib.stack import REDIS_PASSWORD_ENV, Stack, bin_path, free_port, http_get

TIMEOUT = 400


def readyz(url):
    """/readyz's status, None while the worker does not listen (yet)."""
    try:
        return http_get(url, timeout=2)[0]
    except OSError:
        return None


class ReadyWatch(threading.Thread):
    """Polls /readyz every 50 ms and keeps each (monotonic time, status)."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.seen = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.seen.append((time.monotonic(), readyz(self.url)))
            time.sleep(0.05)

    def stop(self):
        self.done.set()
        self.join(5)

    def statuses_after(self, t):
        return [st for ts, st in self.seen if ts >= t]


def test_primary_killed_mid_run_loses_nothing():
    """400 jobs on a budget that covers 349 of them, calls of 500 ms in
    flight; the primary is SIGKILLed mid-run, the sentinels promote the
    first replica, and the sentinels make the second replica the new
    master's. The old primary stays down: a primary restarted empty while
    a loaded machine's sentinels may fail over again could be promoted
    with no data, which no worker can survive (Redis without persistence)."""
    n, limit_nusd = 400, 70_000_000
    budgets = [{"name": "nightly", "limit_usd": limit_nusd / 1e9, "period": "none", "parent": ""}]
    with budget_stack(budgets, latency_ms=500, max_in_flight=100) as s:
        cluster = SentinelCluster(tmpdir=s.dir, password="sentinel-test-pw", replicas=2,
                                  down_after_ms=2000)
        # host and port name the stack's own Redis: with sentinels they must
        # not be used, and a ledger written there would fail the sums below.
        s.config["redis"].update({"sentinels": cluster.sentinel_addresses,
                                  "sentinel_master": cluster.master, "min_replicas_acked": 1,
                                  "password_env": REDIS_PASSWORD_ENV})
        s.env[REDIS_PASSWORD_ENV] = cluster.password
        s.config["worker"]["metrics_listen"] = f"127.0.0.1:{free_port()}"
        s.write_config()
        w = s.worker()
        procs.wait_until(lambda: readyz(s.metrics_url + "/readyz") == 200, 60,
                         what="worker ready")
        watch = ReadyWatch(s.metrics_url + "/readyz")
        watch.start()
        produce(s, n)
        procs.wait_until(lambda: s.fake.stats()["requests"] >= 100, 120, interval=0.05,
                         what="100 calls made")
        old = cluster.primary
        killed_at = time.monotonic()
        old.kill()
        new_port = cluster.wait_failover(old.port, 60)
        # The worker waits for a replica to acknowledge: the second replica,
        # once the sentinels have pointed it at the new master.
        procs.wait_until(lambda: watch.seen and watch.seen[-1][1] == 200, 90, interval=0.1,
                         what="ready again after the failover")
        res = final_results(s, n, 300)
        watch.stop()

        after_kill = watch.statuses_after(killed_at)
        assert 503 in after_kill, after_kill[:50]  # not ready without a primary
        assert after_kill[-1] == 200
        assert w.wait_log(lambda d: d.get("msg") == "redis ready"
                          and d.get("port") == str(new_port), 5)

        # Every job has one result: ok, or budget_exhausted where the limit binds.
        assert len(res) == n, sorted(set(f"b-{i}" for i in range(n)) - set(res))[:20]
        counts = {}
        for r in s.results(timeout_s=10):
            counts[r["id"]] = counts.get(r["id"], 0) + 1
        assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1][:10]
        ok = {k for k, r in res.items() if r["status"] == "ok"}
        codes = {r["error"]["code"] for r in res.values() if r["status"] == "error"}
        assert codes <= {"budget_exhausted"}, codes
        assert len(ok) == calls_that_fit(limit_nusd), (len(ok), calls_that_fit(limit_nusd))

        # The ledger, read through the sentinels by the command line, on the
        # new master: nothing overspent, nothing reserved at rest, equal to
        # the cost records; no attempt charged twice, no call made twice.
        b = budget_show(s)["nightly"]
        assert b["spent_nusd"] <= limit_nusd, b
        assert b["reserved_nusd"] == 0, b
        costs = distinct_costs(s)
        assert sum(c["cost_nusd"] for c in costs.values()) == b["spent_nusd"], b
        per_job = {}
        for job_id, _attempt in costs:
            per_job[job_id] = per_job.get(job_id, 0) + 1
        assert set(per_job) == ok and set(per_job.values()) == {1}, per_job
        assert s.fake.stats()["requests"] == len(ok)
        prefix = s.config["redis"]["key_prefix"]
        master = cluster.server(new_port).client()
        assert master.zcard(f"{prefix}{{ledger}}:leases") == 0
        assert int(master.hget(f"{prefix}{{ledger}}:b:nightly:all", "spent")) == b["spent_nusd"]
        assert not s.redis.client().keys(f"{prefix}*")  # host and port were not used

        w.sigterm()
        assert w.wait(60) == 0


def run_cli(s, *args):
    return subprocess.run([bin_path("promptyard"), *args, "-c", str(s.config_path)],
                          capture_output=True, timeout=60, env=procs.child_env(s.env))


def test_acl_user_for_worker_and_cli():
    password = "acl-pass-7f3a"
    with Stack(redis_username="alice", redis_password=password) as s:
        assert s.redis.client(decode_responses=True).acl_whoami() == "alice"
        w = s.worker()
        jobs = [json.dumps({"id": f"acl-{i}", "prompt": f"doc {i}"}).encode() for i in range(20)]
        s.produce_jobs(jobs)
        res = final_results(s, 20, 120)
        assert len(res) == 20 and all(r["status"] == "ok" for r in res.values()), res
        p = run_cli(s, "budget", "show", "--json")
        assert p.returncode == 0, p.stderr.decode()
        spent = json.loads(p.stdout)["budgets"][0]["spent_nusd"]
        assert spent == sum(c["cost_nusd"] for c in distinct_costs(s).values()) > 0
        w.sigterm()
        assert w.wait(60) == 0

        # A wrong password: exit 1 at start, the user named, the password not.
        wrong = "wrong-pass-93kd"
        s.env[REDIS_PASSWORD_ENV] = wrong
        bad = s.worker()
        assert bad.wait(60) == 1
        err = bad.log_text()
        assert 'authentication failed for user "alice"' in err, err
        assert wrong not in err and password not in err
        p = run_cli(s, "budget", "show")
        assert p.returncode == 1
        err = p.stderr.decode()
        assert 'authentication failed for user "alice"' in err, err
        assert wrong not in err and password not in err
