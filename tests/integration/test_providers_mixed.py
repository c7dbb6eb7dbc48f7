"""The three wire formats in one run (issue 6): jobs answered by OpenAI,
Anthropic and Gemini at once, and jobs failing over from a failing Anthropic
to a failing Gemini to OpenAI; every cost record exact to the nano-USD against
the fake provider's own account of usage; no API key anywhere in the outputs
or the logs."""
import json
import subprocess

from tests.lib import procs
from tests.lib.stack import PROVIDER_KEYS, PROVIDER_PREFIX, Stack, bin_path

TIMEOUT = 300

# USD per Mtok: input, cached input, output. Cheapest first: claude, gemini, gpt.
PRICES = {"claude-bad": (0.10, 0.01, 0.50), "claude-ok": (0.11, 0.011, 0.55),
          "gemini-bad": (0.20, 0.05, 0.80), "gemini-ok": (0.21, 0.05, 0.84),
          "gpt-x": (0.30, 0.15, 1.20)}
PROVIDER_OF = {"claude-bad": "anthropic", "claude-ok": "anthropic", "gemini-bad": "gemini",
               "gemini-ok": "gemini", "gpt-x": "openai"}


def catalog():
    return [{"name": n, "provider": PROVIDER_OF[n], "id": n, "input_usd_per_mtok": p[0],
             "cached_input_usd_per_mtok": p[1], "output_usd_per_mtok": p[2],
             "context_tokens": 200000, "default_max_tokens": 64, "quality": 0.7,
             "latency_ms": 500} for n, p in PRICES.items()]


def nusd_per_mtok(usd):
    return round(usd * 1e9)


def test_three_formats_and_failover_exact_to_the_nano_usd():
    with Stack(partitions=4, models=catalog()) as s:
        s.config["worker"].update({"metrics_listen": "", "default_strategy": "cheapest",
                                   "log_level": "debug"})
        s.config["router"]["breaker_failures"] = 1000  # every failing call is tried
        s.write_config()
        s.set_fake_rules([
            {"prefix": PROVIDER_PREFIX["anthropic"], "model": "claude-bad", "status": 529},
            {"prefix": PROVIDER_PREFIX["gemini"], "model": "gemini-bad", "status": 503},
            {"prefix": PROVIDER_PREFIX["openai"], "model": "*", "latency_ms": 10,
             "cached_tokens": 4},
            {"prefix": "*", "model": "*", "latency_ms": 10},
        ])
        jobs, n_direct = [], 0
        for i in range(30):  # answered directly, in each format
            model = ["claude-ok", "gemini-ok", "gpt-x"][i % 3]
            jobs.append({"id": f"direct-{i}", "model": model,
                         "messages": [{"role": "system", "content": "Be terse."},
                                      {"role": "user", "content": f"Résumé nº{i} — 漢字 🙂"}]})
            n_direct += 1
        for i in range(20):  # Anthropic fails, then Gemini fails, then OpenAI answers
            jobs.append({"id": f"failover-{i}", "prompt": f"question {i}",
                         "models": ["claude-bad", "gemini-bad", "gpt-x"]})
        s.produce_jobs([json.dumps(j).encode() for j in jobs],
                       keys=[j["id"].encode() for j in jobs])
        w = s.worker()
        results = {r["id"]: r for r in s.results(len(jobs), timeout_s=180)}
        assert len(results) == len(jobs)
        for r in results.values():
            assert r["status"] == "ok", r
        for i in range(30):
            r = results[f"direct-{i}"]
            assert r["model"] == ["claude-ok", "gemini-ok", "gpt-x"][i % 3]
            assert r["provider"] == PROVIDER_OF[r["model"]]
        for i in range(20):
            kinds = [(a["model"], a["outcome"]) for a in results[f"failover-{i}"]["attempts"]]
            assert kinds == [("claude-bad", "http_529"), ("gemini-bad", "http_503"),
                             ("gpt-x", "ok")], kinds

        # Every billed call, priced from the fake's own record of its usage.
        expected = {}
        for q in s.fake.requests():
            if not q["billed"]:
                continue
            pin, pcached, pout = (nusd_per_mtok(x) for x in PRICES[q["model"]])
            cached = q["cached_tokens"]
            num = (q["input_tokens"] - cached) * pin + cached * pcached + q["output_tokens"] * pout
            expected.setdefault(q["model"], []).append(-(-num // 1_000_000))
        costs = s.costs(timeout_s=30)
        got = {}
        for c in costs:
            assert c["estimated"] is False
            got.setdefault(c["model"], []).append(c["cost_nusd"])
        assert {m: sorted(v) for m, v in got.items()} == \
            {m: sorted(v) for m, v in expected.items()}
        assert set(got) == {"claude-ok", "gemini-ok", "gpt-x"}
        for r in results.values():
            mine = sum(c["cost_nusd"] for c in costs if c["job_id"] == r["id"])
            assert round(r["cost_usd"] * 1e9) == mine

        # No key in any log line, result, cost or DLQ record, or error message.
        w.sigterm()
        assert w.wait(60) == 0
        p = subprocess.run([bin_path("promptyard"), "budget", "show", "--json", "-c",
                            str(s.config_path)], capture_output=True, timeout=30,
                           env=procs.child_env(s.env))
        everything = (w.log_text() + json.dumps(list(results.values())) + json.dumps(costs)
                      + json.dumps(s.dlq(timeout_s=5)) + p.stdout.decode() + p.stderr.decode())
        for var, key in PROVIDER_KEYS.values():
            assert key not in everything, var


def test_many_providers_each_with_its_own_key():
    """A call's header lines (its key among them) come from a list shared by
    the calls with the same lines, kept by its provider's connection pool:
    twelve providers of one format, each with its own key, which the fake
    checks per provider. A list handed to the wrong provider would be refused
    (401) and the pinned job would fail."""
    n = 12
    with Stack(partitions=2, models=[], providers=[]) as s:
        s.providers[:] = [{"name": f"p{i}", "type": "openai", "base_url": s.fake.url(f"/p{i}/v1"),
                           "api_key_env": f"PY_TEST_KEY_{i}", "timeout_ms": 10000,
                           "max_connections": 2} for i in range(n)]
        s.config["providers"] = s.providers
        s.config["models"] = [{"name": f"m{i}", "provider": f"p{i}", "id": "gpt-4o-mini",
                               "input_usd_per_mtok": 0.15, "cached_input_usd_per_mtok": 0.075,
                               "output_usd_per_mtok": 0.60, "context_tokens": 128000,
                               "default_max_tokens": 32, "quality": 0.62, "latency_ms": 800}
                              for i in range(n)]
        s.config["worker"]["metrics_listen"] = ""
        for i in range(n):
            s.env[f"PY_TEST_KEY_{i}"] = f"sk-many-{i:03d}-{'x' * (i % 7)}"
        s.write_config()
        # One rule per provider: set_fake_rules gives each its key to check.
        s.set_fake_rules([{"prefix": f"/p{i}/v1", "model": "*", "latency_ms": 5}
                          for i in range(n)])
        jobs = [{"id": f"many-{i}-{k}", "model": f"m{i}", "prompt": f"question {i}.{k}"}
                for k in range(2) for i in range(n)]
        s.produce_jobs([json.dumps(j).encode() for j in jobs])
        w = s.worker()
        results = {r["id"]: r for r in s.results(len(jobs), timeout_s=120)}
        assert len(results) == len(jobs)
        for j in jobs:
            r = results[j["id"]]
            assert r["status"] == "ok", r
            assert r["provider"] == f"p{j['model'][1:]}"
        by_prefix = s.fake.stats()["by_prefix"]
        for i in range(n):
            assert by_prefix.get(f"/p{i}/v1") == 2, (i, by_prefix.get(f"/p{i}/v1"))
        w.sigterm()
        assert w.wait(60) == 0
        text = w.log_text() + json.dumps(list(results.values()))
        for i in range(n):
            assert s.env[f"PY_TEST_KEY_{i}"] not in text
