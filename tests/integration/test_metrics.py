"""The worker's HTTP endpoint (issue 7, SPEC §11): /metrics parsed by a real
Prometheus text parser agrees with the results produced; /healthz; /readyz
follows Redis."""
import json
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.lib import procs
from tests.lib.stack import Stack

TIMEOUT = 180

MODEL = {"name": "mini", "provider": "openai", "id": "gpt-4o-mini", "input_usd_per_mtok": 0.15,
         "cached_input_usd_per_mtok": 0.075, "output_usd_per_mtok": 0.60, "context_tokens": 128000,
         "default_max_tokens": 32, "quality": 0.62, "latency_ms": 800}


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:  # not listening yet
        return 0, ""


def scrape(s):
    status, text = get(s.metrics_url + "/metrics")
    assert status == 200
    samples = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            samples[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return text, samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_agree_with_results():
    second = dict(MODEL, name="mini2", id="gpt-4o-mini-2", input_usd_per_mtok=0.2)
    s = Stack(partitions=2, models=[dict(MODEL), second], providers=[])
    with s:
        s.providers[:] = [{"name": "openai", "type": "openai", "base_url": s.fake.url("/openai/v1"),
                           "api_key_env": "FAKE_OPENAI_KEY", "timeout_ms": 10000,
                           "max_connections": 64}]
        s.config["providers"] = s.providers
        s.config["worker"]["default_strategy"] = "cheapest"  # mini, then mini2
        s.config["router"]["breaker_failures"] = 1000  # not a breaker test
        s.set_fake_rules([{"prefix": "/openai/v1", "model": "gpt-4o-mini", "latency_ms": 20,
                           "fail_first": 20, "status": 503},
                          {"prefix": "/openai/v1", "model": "*", "latency_ms": 20}])
        s.write_config()
        jobs = [json.dumps({"id": f"m-{i}", "prompt": f"doc {i}"}).encode() for i in range(300)]
        jobs += [b'{"id": "bad-1"}', b"not json"]
        s.produce_jobs(jobs)
        w = s.worker()
        procs.wait_until(lambda: get(s.metrics_url + "/healthz")[0] == 200, 30)
        # A scrape while jobs are running parses.
        text, _ = scrape(s)
        assert "# TYPE promptyard_provider_latency_seconds histogram" in text
        results = s.results(302, timeout_s=90)
        assert len(results) == 302
        ok = sum(1 for r in results if r["status"] == "ok")
        invalid = sum(1 for r in results if r["status"] == "error"
                      and r["error"]["code"] == "invalid_job")
        assert (ok, invalid) == (300, 2), (ok, invalid, [r["error"] for r in results if r["status"] == "error"][:5])
        attempts = [a for r in results for a in r["attempts"]]
        spend = sum(r["cost_usd"] for r in results)

        def settled():
            _, smp = scrape(s)
            return value(smp, "promptyard_jobs_total", status="ok", code="") == ok and smp
        samples = procs.wait_until(settled, 20, interval=0.2, what="counters caught up")
        assert value(samples, "promptyard_jobs_total", status="error", code="invalid_job") == invalid
        assert sum(1 for a in attempts if a["outcome"] == "http_503") == 20
        for name in ("mini", "mini2"):
            mine = [a for a in attempts if a["model"] == name]
            for outcome in ("ok", "http_503"):
                assert value(samples, "promptyard_attempts_total", provider="openai", model=name,
                             outcome=outcome) == sum(1 for a in mine if a["outcome"] == outcome)
            # A call has a latency; a model skipped without one (circuit_open:
            # held off behind mini's failing cold wave) has none.
            called = [a for a in mine if a["outcome"] not in ("circuit_open", "rate_limited")]
            assert value(samples, "promptyard_provider_latency_seconds_count", provider="openai",
                         model=name) == len(called)
        spent = sum(value(samples, "promptyard_spend_usd_total", budget="default",
                          provider="openai", model=name) for name in ("mini", "mini2"))
        assert abs(spent - spend) < 1e-9
        assert value(samples, "promptyard_in_flight_jobs") == 0

        # /readyz: 200 with an assignment and Redis up; 503 while Redis is down.
        assert get(s.metrics_url + "/readyz")[0] == 200
        s.redis.kill()
        procs.wait_until(lambda: get(s.metrics_url + "/readyz")[0] == 503, 20, what="readyz 503")
        status, body = get(s.metrics_url + "/readyz")
        assert "redis" in body
        s.redis.start()
        procs.wait_until(lambda: get(s.metrics_url + "/readyz")[0] == 200, 30, what="readyz 200")
        w.sigterm()
        assert w.wait(60) == 0
