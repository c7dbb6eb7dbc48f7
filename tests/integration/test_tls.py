"""Provider calls over real TLS: nginx (tests/lib/tls.py) with a certificate of a
test CA made at run time, in front of the fake provider. HTTP/2 where the
server offers it, HTTP/1.1 over TLS where it does not, and the provider's
ca_file as the only thing that makes the worker trust the server."""
import json
from collections import Counter

from tests.lib.schemas import validate
from tests.lib.stack import Stack

TIMEOUT = 300

MODEL = {"name": "mini", "provider": "openai", "id": "gpt-4o-mini", "input_usd_per_mtok": 0.15,
         "cached_input_usd_per_mtok": 0.075, "output_usd_per_mtok": 0.60, "context_tokens": 128000,
         "default_max_tokens": 64, "quality": 0.62, "latency_ms": 800}
PRICE = (150_000_000, 75_000_000, 600_000_000)  # nano-USD per million tokens


def tls_stack(tls, connections=4, ca_file=True, **kw):
    """One OpenAI-type provider on the fake through the TLS front."""
    s = Stack(partitions=4, models=[dict(MODEL)], providers=[], tls=tls, **kw)
    p = {"name": "openai", "type": "openai", "base_url": s.provider_url("/openai/v1", tls),
         "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": 20000, "max_connections": connections}
    if ca_file:
        p["ca_file"] = s.tls.ca_file
    s.providers[:] = [p]
    s.config["providers"] = s.providers
    s.config["worker"]["metrics_listen"] = ""
    # Latency keeps calls in flight together, so that they share connections.
    s.set_fake_rules([{"prefix": "/openai/v1", "model": "*", "cached_tokens": 3,
                       "latency_ms": 50}])
    s.write_config()
    return s


def cost_of(input_tokens, cached, output_tokens):
    num = (input_tokens - cached) * PRICE[0] + cached * PRICE[1] + output_tokens * PRICE[2]
    return -(-num // 1_000_000)


def check_exact_costs(s, n):
    """Every job ok, each result's cost and its cost record the fake's usage
    times the prices, and the ledger's spent their sum."""
    results = s.results(n, timeout_s=TIMEOUT)
    assert len(results) == n, len(results)
    bad = [r for r in results if r["status"] != "ok"]
    assert not bad, bad[:3]
    assert len({r["id"] for r in results}) == n
    costs = s.costs(n, timeout_s=120)
    assert len(costs) == n, len(costs)
    by_job = {c["job_id"]: c for c in costs}
    assert len(by_job) == n
    for r in results:
        validate("result", r)
        u = r["usage"]
        want = cost_of(u["input_tokens"], u["cached_input_tokens"], u["output_tokens"])
        c = by_job[r["id"]]
        validate("cost", c)
        assert c["cost_nusd"] == want and c["estimated"] is False, (r, c)
        assert (c["input_tokens"], c["output_tokens"], c["cached_input_tokens"]) == \
            (u["input_tokens"], u["output_tokens"], u["cached_input_tokens"]), (r, c)
        assert abs(r["cost_usd"] - want / 1e9) < 1e-12, (r["cost_usd"], want)
    # The fake's own account of what it billed, call by call.
    calls = [q for q in s.fake.requests() if q["status"] == 200]
    assert len(calls) == n, len(calls)
    billed = Counter((q["input_tokens"], q["cached_tokens"], q["output_tokens"]) for q in calls)
    reported = Counter((r["usage"]["input_tokens"], r["usage"]["cached_input_tokens"],
                        r["usage"]["output_tokens"]) for r in results)
    assert billed == reported
    total = sum(c["cost_nusd"] for c in costs)
    assert total == sum(cost_of(*k) * v for k, v in billed.items())
    prefix = s.config["redis"]["key_prefix"]
    spent = int(s.redis.client().hget(f"{prefix}{{ledger}}:b:default:all", "spent"))
    assert spent == total, (spent, total)


def jobs(n, tag):
    # Prompts of different lengths, so usage differs from job to job.
    return [json.dumps({"id": f"{tag}-{i}", "prompt": f"Document {i}: " + "lorem " * (i % 50)}).encode()
            for i in range(n)]


def test_tls_http2_thousand_jobs_exact_costs():
    """1,000 jobs over HTTPS to a server that offers HTTP/2: every call is an
    HTTP/2 request, a thousand calls in flight share at most max_connections
    connections, and every nano-USD is accounted for."""
    n = 1000
    with tls_stack("h2", connections=4) as s:
        s.produce_jobs(jobs(n, "h2"))
        w = s.worker()
        check_exact_costs(s, n)
        served = [q for q in s.tls.requests() if q.port == s.tls.port_h2]
        assert len(served) == n, len(served)
        assert {q.protocol for q in served} == {"HTTP/2.0"}, Counter(q.protocol for q in served)
        assert {q.status for q in served} == {200}
        conns = {q.connection for q in served}
        assert 1 <= len(conns) <= 4, len(conns)
        w.sigterm()
        assert w.wait(60) == 0, w.log_text()[-2000:]


def test_tls_http11_when_http2_is_not_offered():
    """A TLS server that offers only HTTP/1.1 gets HTTP/1.1, a call per
    connection at a time: the pool's slots are its connections."""
    n = 300
    with tls_stack("h1", connections=8) as s:
        s.produce_jobs(jobs(n, "h1"))
        w = s.worker()
        check_exact_costs(s, n)
        served = [q for q in s.tls.requests() if q.port == s.tls.port_h1]
        assert len(served) == n, len(served)
        assert {q.protocol for q in served} == {"HTTP/1.1"}
        assert 1 <= len({q.connection for q in served}) <= 8
        w.sigterm()
        assert w.wait(60) == 0, w.log_text()[-2000:]


def test_tls_without_ca_file_fails_every_call_with_connect_error():
    """Without ca_file the worker trusts only the system's CAs, which did not
    sign the test server's certificate: every call fails its handshake
    (connect_error) and nothing reaches the fake. So in the tests above it is
    ca_file that made the worker trust the server."""
    n = 20
    with tls_stack("h2", ca_file=False) as s:
        s.config["worker"]["max_attempts"] = 2
        s.config["worker"]["retry_same"] = 1
        s.config["router"]["breaker_failures"] = 1000  # every attempt a real call
        s.write_config()
        s.produce_jobs(jobs(n, "noca"))
        w = s.worker()
        results = s.results(n, timeout_s=TIMEOUT)
        assert len(results) == n
        for r in results:
            validate("result", r)
            assert r["status"] == "error" and r["error"]["code"] == "providers_failed", r
            assert [a["outcome"] for a in r["attempts"]] == ["connect_error"] * 2, r
            assert r["cost_usd"] == 0
        assert s.fake.requests() == []
        assert s.tls.requests() == []
        w.sigterm()
        assert w.wait(60) == 0, w.log_text()[-2000:]
