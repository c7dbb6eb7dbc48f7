"""The first job end to end (issue 2): one worker, the real binaries, the mock
cluster, a real redis-server and the fake provider; every output checked
against its schema and every nano-USD accounted for."""
import json
import os
import signal
import subprocess
import time

from tests.lib import procs
from tests.lib.schemas import validate
from tests.lib.kafkautil import consume_all
from tests.lib.stack import Stack, bin_path, end_offsets

TIMEOUT = 240

# Two OpenAI-format models at different prices: cheapest routing picks "mini",
# a pinned job goes to "large".
MODELS = [
    {"name": "mini", "provider": "openai", "id": "gpt-4o-mini", "input_usd_per_mtok": 0.15,
     "cached_input_usd_per_mtok": 0.075, "output_usd_per_mtok": 0.60, "context_tokens": 128000,
     "default_max_tokens": 64, "quality": 0.62, "latency_ms": 800, "capabilities": ["json"]},
    {"name": "large", "provider": "openai", "id": "gpt-4o", "input_usd_per_mtok": 2.5,
     "cached_input_usd_per_mtok": 1.25, "output_usd_per_mtok": 10.0, "context_tokens": 128000,
     "default_max_tokens": 64, "quality": 0.80, "latency_ms": 900, "capabilities": ["json", "vision"]},
]
PRICES = {"gpt-4o-mini": (150_000_000, 75_000_000, 600_000_000),
          "gpt-4o": (2_500_000_000, 1_250_000_000, 10_000_000_000)}


def openai_stack(**kw):
    s = Stack(partitions=4, models=MODELS, providers=[], **kw)
    s.providers[:] = [{"name": "openai", "type": "openai", "base_url": s.fake.url("/openai/v1"),
                       "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": 10000,
                       "max_connections": 64}]
    s.config["providers"] = s.providers
    s.config["worker"]["default_strategy"] = "cheapest"
    s.config["worker"]["metrics_listen"] = ""
    s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "cached_tokens": 0}])
    s.write_config()
    return s


def malformed_jobs():
    """50 malformed messages of different kinds, and the field each must name."""
    rows = [
        (b'{"id": "m-json", "prompt": ', "value"),
        (b'\xff\xfe not utf-8', "value"),
        (b'[1, 2, 3]', "value"),
        (b'"just a string"', "value"),
        (b'{"prompt": "no id"}', "id"),
        (b'{"id": "", "prompt": "x"}', "id"),
        (json.dumps({"id": "x" * 201, "prompt": "x"}).encode(), "id"),
        (b'{"id": 42, "prompt": "x"}', "id"),
        (b'{"id": "m-both", "prompt": "x", "messages": [{"role": "user", "content": "y"}]}', "prompt"),
        (b'{"id": "m-neither"}', "prompt"),
        (b'{"id": "m-role", "messages": [{"role": "robot", "content": "y"}]}', "messages[0].role"),
        (b'{"id": "m-content", "messages": [{"role": "user", "content": 7}]}', "messages[0].content"),
        (b'{"id": "m-msgs", "messages": "hello"}', "messages"),
        (b'{"id": "m-strategy", "prompt": "x", "strategy": "random"}', "strategy"),
        (b'{"id": "m-model", "prompt": "x", "model": "gpt-9"}', "model"),
        (b'{"id": "m-models", "prompt": "x", "models": ["mini", "nope"]}', "models"),
        (b'{"id": "m-budget", "prompt": "x", "budget": "nope"}', "budget"),
        (b'{"id": "m-maxtok0", "prompt": "x", "max_tokens": 0}', "max_tokens"),
        (b'{"id": "m-maxtok-big", "prompt": "x", "max_tokens": 1000001}', "max_tokens"),
        (b'{"id": "m-maxtok-float", "prompt": "x", "max_tokens": 5.5}', "max_tokens"),
        (b'{"id": "m-cost", "prompt": "x", "max_cost_usd": 0}', "max_cost_usd"),
        (b'{"id": "m-cost-str", "prompt": "x", "max_cost_usd": "1"}', "max_cost_usd"),
        (b'{"id": "m-fmt", "prompt": "x", "response_format": {"type": "yaml"}}', "response_format"),
        (b'{"id": "m-cap", "prompt": "x", "capabilities": ["telepathy"]}', "capabilities"),
        (b'{"id": "m-deadline", "prompt": "x", "deadline": "tomorrow"}', "deadline"),
        (b'{"id": "m-meta", "prompt": "x", "metadata": [1]}', "metadata"),
        (json.dumps({"id": "m-meta-big", "prompt": "x", "metadata": {"k": "v" * 17000}}).encode(),
         "metadata"),
        (b'{"id": "m-temp", "prompt": "x", "temperature": "hot"}', "temperature"),
        (b'{"id": "m-stop", "prompt": "x", "stop": [1]}', "stop"),
        (b'{"id": "m-fallbacks", "prompt": "x", "allow_fallbacks": "yes"}', "allow_fallbacks"),
        (b'', "value"),
    ]
    out = list(rows)
    i = 0
    while len(out) < 50:  # more of the same kinds, with other ids
        body, field = rows[4 + i % (len(rows) - 5)]
        if body.startswith(b'{"id": "m-'):
            body = body.replace(b'{"id": "m-', b'{"id": "m%d-' % i, 1)
        out.append((body, field))
        i += 1
    return out


def test_500_jobs_exact_spend():
    with openai_stack() as s:
        valid = []
        for i in range(450):
            job = {"id": f"job-{i}", "prompt": f"Summarise document {i}: " + "lorem ipsum " * (i % 40)}
            if i % 10 == 0:
                job["model"] = "large"
            if i % 7 == 0:
                job = {"id": f"job-{i}", "messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": f"Question {i}? é 漢字"}],
                       "metadata": {"n": i, "batch": "nightly"}}
            valid.append(json.dumps(job).encode())
        bad = malformed_jobs()
        assert len(bad) == 50
        values = valid + [b for b, _ in bad]
        # Interleave so that bad messages sit between good ones in every partition.
        order = sorted(range(len(values)), key=lambda k: (k * 7919) % len(values))
        s.produce_jobs([values[k] for k in order], headers=[[("trace", b"t-%d" % k)] for k in order])

        w = s.worker()
        results = s.results(500, timeout_s=180)
        assert len(results) == 500, f"{len(results)} results"
        ok = [r for r in results if r["status"] == "ok"]
        err = [r for r in results if r["status"] == "error"]
        assert len(ok) == 450, f"{len(ok)} ok: " + str([r for r in err][:3])
        assert len(err) == 50
        assert {r["error"]["code"] for r in err} == {"invalid_job"}
        for r in results:
            validate("result", r)
        assert len({r["id"] for r in ok}) == 450

        # Every malformed message's error names its field.
        messages = sorted(r["error"]["message"] for r in err)
        for body, field in bad:
            assert any(m.startswith(field) for m in messages), (field, body[:60])
        # Pinned jobs went to the pinned model, the rest to the cheapest.
        by_id = {r["id"]: r for r in ok}
        assert by_id["job-10"]["model"] == "large" and by_id["job-11"]["model"] == "mini"
        assert by_id["job-7"]["metadata"] == {"n": 7, "batch": "nightly"}
        assert by_id["job-7"]["usage"]["input_tokens"] > 0

        dlq = s.dlq(50, timeout_s=60)
        assert len(dlq) == 50
        for d in dlq:
            validate("dlq", d)
            assert d["error"]["code"] == "invalid_job"
            assert d["source"]["topic"] == s.jobs_topic
        # Original headers ride along to the DLQ (so replays keep them).
        raw_dlq = consume_all(s.bootstrap, s.dlq_topic, 50, timeout_s=30)
        assert all(m.header("trace") for m in raw_dlq)
        # Results carry the job id header; keys default to the id.
        raw_results = consume_all(s.bootstrap, s.results_topic, 500, timeout_s=30)
        for m in raw_results:
            rid = json.loads(m.value)["id"]
            assert m.header("promptyard-job-id") in (rid, rid.encode())

        costs = s.costs(450, timeout_s=60)
        assert len(costs) == 450
        for c in costs:
            validate("cost", c)
            assert c["estimated"] is False and c["attempt"] == 1
        total = sum(c["cost_nusd"] for c in costs)

        # The expectation, from the fake provider's own account of usage.
        reqs = s.fake.requests()
        calls = [q for q in reqs if q["status"] == 200]
        assert len(calls) == 450, len(calls)
        expected = 0
        for q in calls:
            pin, pcached, pout = PRICES[q["model"]]
            uncached = q["input_tokens"] - q["cached_tokens"]
            num = uncached * pin + q["cached_tokens"] * pcached + q["output_tokens"] * pout
            expected += -(-num // 1_000_000)
        assert total == expected, (total, expected)

        r = s.redis.client()
        prefix = s.config["redis"]["key_prefix"]
        spent = int(r.hget(f"{prefix}{{ledger}}:b:default:all", "spent"))
        assert spent == total, (spent, total)

        # SIGTERM: exit 0 with every offset committed.
        w.sigterm()
        assert w.wait(60) == 0, w.log_text()[-2000:]
        ends = end_offsets(s.bootstrap, s.jobs_topic)
        committed = {p: (c if c is not None else 0) for p, c in s.committed().items()}
        assert committed == ends, (committed, ends)


def test_a_proxy_in_the_environment_is_used():
    """Every call goes through libcurl, which honours http_proxy: a proxy that
    is not there fails every call, and nothing reaches the provider."""
    with openai_stack() as s:
        s.config["worker"]["max_attempts"] = 1
        s.write_config()
        s.produce_jobs([json.dumps({"id": f"p-{i}", "prompt": "x"}).encode() for i in range(5)])
        w = s.worker(env={"http_proxy": "http://127.0.0.1:1"})
        results = s.results(5, timeout_s=120)
        assert {r["status"] for r in results} == {"error"}, results[:2]
        assert {r["error"]["code"] for r in results} == {"providers_failed"}, results[:2]
        assert {a["outcome"] for r in results for a in r["attempts"]} == {"connect_error"}
        assert s.fake.requests() == []
        w.sigterm()
        assert w.wait(60) == 0, w.log_text()[-2000:]


def test_redis_by_host_name():
    """redis.host may be a name (the shipped Kubernetes and compose configs
    use one): the worker looks it up off its loop and connects to the
    address, and its logs name the host."""
    with openai_stack() as s:
        assert s.redis.host in ("127.0.0.1", "localhost"), s.redis.host
        s.config["redis"]["host"] = "localhost"
        s.write_config()
        s.produce_jobs([json.dumps({"id": f"n-{i}", "prompt": f"Doc {i}"}).encode()
                        for i in range(20)])
        w = s.worker()
        results = s.results(20, timeout_s=120)
        assert sorted(r["id"] for r in results if r["status"] == "ok") == \
            sorted(f"n-{i}" for i in range(20)), results[:3]
        ready = [ln for ln in w.log_lines() if ln.get("msg") == "redis ready"]
        assert ready and ready[0].get("host") == "localhost", ready
        w.sigterm()
        assert w.wait(60) == 0, w.log_text()[-2000:]


def run_worker(cfg_path, env=None, timeout=40):
    e = procs.child_env(env or {})
    p = subprocess.run([bin_path("promptyard-worker"), "-c", str(cfg_path)], env=e,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def test_startup_errors_are_one_clear_line():
    with openai_stack() as s:
        # A malformed config file: exit 2, file:line: key: problem.
        bad = s.dir / "bad.cfg"
        bad.write_text('worker: {\n  max_in_flight = "many";\n};\n')
        rc, err = run_worker(bad)
        assert rc == 2, (rc, err)
        assert f"{bad}:2: worker.max_in_flight:" in err, err
        assert len(err.strip().splitlines()) == 1, err

        # A missing API key variable: exit 2, names the variable, not a value.
        rc, err = run_worker(s.config_path, env={"FAKE_OPENAI_KEY": None})
        assert rc == 2, (rc, err)
        assert "FAKE_OPENAI_KEY" in err and "is not set" in err, err

        # An unreachable Redis: exit 1.
        s.config["redis"]["port"] = procs.free_port()
        cfg = s.write_config(s.dir / "noredis.cfg")
        rc, err = run_worker(cfg, env=s.env)
        assert rc == 1, (rc, err)
        assert "redis" in err.lower() and len(err.strip().splitlines()) == 1, err

        # An unreachable broker: exit 1.
        s.config["redis"]["port"] = s.redis.port
        s.config["kafka"]["brokers"] = f"127.0.0.1:{procs.free_port()}"
        cfg = s.write_config(s.dir / "nokafka.cfg")
        rc, err = run_worker(cfg, env=s.env, timeout=60)
        assert rc == 1, (rc, err)
        assert "kafka" in err.lower(), err
        assert err.strip().splitlines()[-1].startswith("promptyard-worker: kafka"), err


def test_secrets_never_leave():
    with openai_stack() as s:
        s.produce_jobs([json.dumps({"id": f"s-{i}", "prompt": "hi"}).encode() for i in range(20)]
                       + [b'{"id": "s-bad", "prompt": 1}'])
        w = s.worker(env={}, args=("--log-level", "debug"))
        assert len(s.results(21, timeout_s=60)) == 21
        w.sigterm()
        assert w.wait(60) == 0
        key = s.env["FAKE_OPENAI_KEY"]
        everything = w.log_text() + json.dumps(s.results(21)) + json.dumps(s.dlq(1)) \
            + json.dumps(s.costs(20))
        assert key not in everything
