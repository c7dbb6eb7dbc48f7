"""Answers no provider should send, fed to the real worker through the fake
provider in each wire format (issue 14): impossible usage (huge, negative,
string and float token counts, a second `usage` key that is absurd), null
content, no choices, 100,000-deep nesting, invalid UTF-8, a lone
surrogate, and a body far above worker.max_response_bytes; each model
has a healthy fallback on another provider. Every job ends, the worker
stays up and drains, no attempt is charged more than its reservation's
estimate (impossible usage is charged at the estimate, "estimated": true),
spent equals the cost records and nothing stays reserved.

And a settle the ledger refuses every time (its lease made unreadable by
hand while the call is out): the job moves on instead of waiting for ever,
the lease is reaped at the estimate once readable again, and spent still
equals the cost records."""
import base64
import json
import subprocess

from tests.integration.test_routing import distinct_costs, leases_left, results_for, spent_nusd
from tests.lib import procs
from tests.lib.stack import Stack, bin_path, http_get

TIMEOUT = 300

FORMATS = {"oa": ("openai", "/oa/v1"), "an": ("anthropic", "/an/v1"),
           "gm": ("gemini", "/gm/v1beta")}
KEYS = {"openai": "FAKE_OPENAI_KEY", "anthropic": "FAKE_ANTHROPIC_KEY",
        "gemini": "FAKE_GEMINI_KEY"}
MAX_RESPONSE_BYTES = 512 * 1024
DEPTH = 100_000
ABSURD = 10 ** 12


def answer(fmt, content="fine", usage=(20, 5)):
    """A well-formed answer of the format, with the content and the usage
    (input, output) given as they are (any JSON value)."""
    p, c = usage
    if fmt == "openai":
        return {"id": "chatcmpl-h", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": 1}}
    if fmt == "anthropic":
        return {"id": "msg_h", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "text", "text": content}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": p, "output_tokens": c}}
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": content}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": p, "candidatesTokenCount": c,
                              "totalTokenCount": 1}, "modelVersion": "m"}


def with_member(fmt, doc, key, raw):
    """doc's JSON text with one more member `key`: raw (JSON text) at its end."""
    text = json.dumps(doc)
    return text[:-1] + f', "{key}": {raw}' + "}"


def hostile_bodies(fmt):
    """{case: (body as bytes, how the attempt must end)}:
      "estimated"  invalid_response charged at the estimate ("estimated": true):
                   usage above what the call allows, or not readable as
                   counts (SPEC §13)
      "unbilled"   invalid_response, no usage read, no cost record
      "billed"     invalid_response, charged at the usage it reports (a
                   possible one: the provider did bill the call)
      "empty"      ok, with an empty content (the API's schema allows it)"""
    usage_key = "usageMetadata" if fmt == "gemini" else "usage"
    absurd = answer(fmt, usage=(ABSURD, ABSURD))[usage_key]
    null = answer(fmt)
    empty = answer(fmt)
    if fmt == "openai":
        null["choices"][0]["message"]["content"] = None
        empty["choices"] = []
    elif fmt == "anthropic":
        null["content"] = None
        empty["content"] = []
    else:
        null["candidates"][0]["content"] = None
        empty["candidates"] = []
    deep = "[" * DEPTH + "]" * DEPTH
    # OpenAI's message.content may be null, Anthropic's content an empty
    # list: an answer with nothing in it. Anthropic's content null and
    # Gemini's candidate without content break their schemas; OpenAI's empty
    # choices and Gemini's empty candidates carry usage, and are billed.
    null_how = "empty" if fmt == "openai" else "billed"
    empty_how = "empty" if fmt == "anthropic" else "billed"
    return {
        "huge": (json.dumps(answer(fmt, usage=(ABSURD, ABSURD))).encode(), "estimated"),
        "huge_out": (json.dumps(answer(fmt, usage=(20, ABSURD))).encode(), "estimated"),
        "astronomic": (json.dumps(answer(fmt, usage=(10 ** 20, 5))).encode(), "estimated"),
        "negative": (json.dumps(answer(fmt, usage=(-5, 3))).encode(), "estimated"),
        "string": (json.dumps(answer(fmt, usage=("12", "3"))).encode(), "estimated"),
        "float": (json.dumps(answer(fmt, usage=(12.5, 3.25))).encode(), "estimated"),
        "dup_usage": (with_member(fmt, answer(fmt), usage_key, json.dumps(absurd)).encode(),
                      "estimated"),
        "null_content": (json.dumps(null).encode(), null_how),
        "empty": (json.dumps(empty).encode(), empty_how),
        "deep": (with_member(fmt, answer(fmt), "x", deep).encode(), "unbilled"),
        "bad_utf8": (json.dumps(answer(fmt, content="fine PLACE")).encode()
                     .replace(b"PLACE", b"\xff\xfe\xc3"), "unbilled"),
        "surrogate": (json.dumps(answer(fmt, content="fine \ud800")).encode(), "unbilled"),
        "too_large": (json.dumps(answer(fmt, content="x" * (4 * MAX_RESPONSE_BYTES))).encode(),
                      "unbilled"),
    }


def model(name, provider, model_id, price_in):
    return {"name": name, "provider": provider, "id": model_id, "input_usd_per_mtok": price_in,
            "cached_input_usd_per_mtok": price_in, "output_usd_per_mtok": price_in * 4,
            "context_tokens": 128000, "default_max_tokens": 64, "quality": 0.6,
            "latency_ms": 500}


def provider(s, name, ptype, prefix, timeout_ms=10000):
    return {"name": name, "type": ptype, "base_url": s.fake.url(prefix),
            "api_key_env": KEYS[ptype], "timeout_ms": timeout_ms, "max_connections": 64}


def route_estimates(s, job):
    """{model name: (estimate_nusd, input_tokens, output_tokens)} as a worker
    would reserve them for job (bin/promptyard route --json)."""
    path = s.dir / "route-job.json"
    path.write_text(json.dumps(job))
    out = subprocess.run([bin_path("promptyard"), "route", "-c", str(s.config_path), str(path),
                          "--json", "--assume-keys"], capture_output=True, timeout=60,
                         env=procs.child_env(s.env), check=True).stdout
    return {m["name"]: (m["estimate_nusd"], m["input_tokens"], m["output_tokens"])
            for m in json.loads(out)["models"]}


def budget_counters(s, budget="default"):
    prefix = s.config["redis"]["key_prefix"]
    h = s.redis.client().hgetall(f"{prefix}{{ledger}}:b:{budget}:all")
    return int(h.get(b"spent", 0)), int(h.get(b"reserved", 0))


def attempts(r):
    return [(a["model"], a["outcome"]) for a in r["attempts"]]


def test_hostile_answers_end_every_job_within_the_estimates():
    per_case = 2
    s = Stack(partitions=4, providers=[], models=[])
    with s:
        cases = {fmt: hostile_bodies(ptype) for fmt, (ptype, _) in FORMATS.items()}
        providers = [provider(s, fmt, ptype, prefix) for fmt, (ptype, prefix) in FORMATS.items()]
        providers.append(provider(s, "fb", "openai", "/fb/v1"))
        models = [model(f"{fmt}-{case}", fmt, case, 0.1)
                  for fmt in FORMATS for case in cases[fmt]]
        models.append(model("fallback", "fb", "fallback", 1.0))
        s.providers[:] = providers
        s.config["providers"] = s.providers
        s.config["models"] = models
        s.config["worker"].update({"default_strategy": "cheapest",
                                   "max_response_bytes": MAX_RESPONSE_BYTES})
        s.config["router"].update({"breaker_failures": 1000})
        s.write_config()
        rules = []
        for fmt, (ptype, prefix) in FORMATS.items():
            for case, (body, _) in cases[fmt].items():
                rules.append({"prefix": prefix, "model": case, "status": 200,
                              "body_base64": base64.b64encode(body).decode()})
        rules.append({"prefix": "/fb/v1", "model": "*", "latency_ms": 5})
        s.set_fake_rules(rules)

        jobs = []
        for fmt in FORMATS:
            for case in cases[fmt]:
                for i in range(per_case):
                    jobs.append({"id": f"{fmt}-{case}-{i}", "prompt": f"question {i}",
                                 "models": [f"{fmt}-{case}", "fallback"]})
        s.produce_jobs([json.dumps(j).encode() for j in jobs],
                       keys=[j["id"].encode() for j in jobs])
        # Every job of the run asks the same: one estimate per model.
        est = route_estimates(s, jobs[0] | {"models": [m["name"] for m in models]})
        w = s.worker()
        ids = {j["id"] for j in jobs}

        def all_in():
            got = {r["id"]: r for r in s.results(timeout_s=3) if r["id"] in ids}
            return got if len(got) == len(ids) else None
        rs = procs.wait_until(all_in, 180, interval=0.5, what="every job's result")
        # The worker is up and answers.
        status, _ = http_get(s.metrics_url + "/healthz")
        assert status == 200
        assert w.running()

        costs = distinct_costs(s)
        for j in jobs:
            r = rs[j["id"]]
            fmt, case = j["id"].split("-")[0], j["id"].split("-", 1)[1].rsplit("-", 1)[0]
            how = cases[fmt][case][1]
            bad = f"{fmt}-{case}"
            kinds = attempts(r)
            if how == "empty":
                assert r["status"] == "ok" and r["content"] == "", (j["id"], r)
                assert kinds == [(bad, "ok")], (j["id"], kinds)
            else:
                assert r["status"] == "ok" and r["model"] == "fallback", (j["id"], r)
                assert kinds == [(bad, "invalid_response"), ("fallback", "ok")], (j["id"], kinds)
            mine = {a: c for (job, a), c in costs.items() if job == j["id"]}
            for c in mine.values():
                # No attempt is charged more than its reservation held.
                assert c["cost_nusd"] <= est[c["model"]][0], (j["id"], c, est[c["model"]])
            bad_costs = [c for c in mine.values() if c["model"] == bad]
            if how == "estimated":
                assert len(bad_costs) == 1, (j["id"], mine)
                c = bad_costs[0]
                assert c["estimated"] is True, c
                assert c["cost_nusd"] == est[bad][0], (c, est[bad])
                assert (c["input_tokens"], c["output_tokens"]) == est[bad][1:], (c, est[bad])
            elif how == "unbilled":
                assert bad_costs == [], (j["id"], bad_costs)
            else:
                assert len(bad_costs) == 1 and bad_costs[0]["estimated"] is False, bad_costs
                assert (bad_costs[0]["input_tokens"], bad_costs[0]["output_tokens"]) == (20, 5)
            assert round(r["cost_usd"] * 1e9) == sum(c["cost_nusd"] for c in mine.values()), \
                (j["id"], r["cost_usd"], mine)

        # At rest: nothing reserved, no lease left, spent is the records' sum.
        procs.wait_until(lambda: leases_left(s) == 0, 30, interval=0.5, what="no lease left")
        spent, reserved = budget_counters(s)
        assert reserved == 0
        assert spent == sum(c["cost_nusd"] for c in costs.values()) == spent_nusd(s)
        w.sigterm()
        assert w.wait(60) == 0


def test_a_settle_the_ledger_keeps_refusing_ends_its_attempt():
    # a1's call hangs until its 3 s timeout; meanwhile its lease is made
    # unreadable (its budget count is not a number), so settle.lua fails
    # the same way each time. The worker gives up after SETTLE_REFUSALS_MAX
    # refusals and the job moves on to b1. Once the lease reads again, it
    # expires (timeout + 15 s) and the reaper charges its estimate.
    s = Stack(partitions=2, providers=[], models=[])
    with s:
        s.providers[:] = [provider(s, "a", "openai", "/a/v1", timeout_ms=3000),
                          provider(s, "b", "openai", "/b/v1")]
        s.config["providers"] = s.providers
        s.config["models"] = [model("a1", "a", "a1", 0.1), model("b1", "b", "b1", 1.0)]
        s.config["worker"].update({"default_strategy": "cheapest"})
        s.write_config()
        s.set_fake_rules([{"prefix": "/a/v1", "model": "*", "hang": True},
                          {"prefix": "/b/v1", "model": "*", "latency_ms": 5}])
        job = {"id": "refused-0", "prompt": "question 0"}
        est = route_estimates(s, job)
        w = s.worker()
        s.produce_jobs([json.dumps(job).encode()], keys=[b"refused-0"])
        procs.wait_until(lambda: s.fake.stats()["suspended"] >= 1, 60, interval=0.05,
                         what="a1's call out")
        prefix = s.config["redis"]["key_prefix"]
        rc = s.redis.client()
        leases = rc.keys(f"{prefix}{{ledger}}:lease:refused-0:*")
        assert len(leases) == 1, leases
        lease = leases[0]
        n = rc.hget(lease, "n")
        rc.hset(lease, "n", "not a number")
        w.wait_log(lambda d: d.get("msg", "").startswith("the ledger refused to settle"), 60)
        rc.hset(lease, "n", n)
        r = results_for(s, "refused", 1)[0]
        assert r["status"] == "ok" and attempts(r) == [("a1", "timeout"), ("b1", "ok")], r
        # The refused attempt is counted at its estimate in the result...
        a_cost = round(r["attempts"][0]["cost_usd"] * 1e9)
        assert a_cost == est["a1"][0], (r["attempts"][0], est["a1"])
        # ...and, once the lease expired, reaped at it and reported so.
        procs.wait_until(lambda: leases_left(s) == 0, 90, interval=0.5, what="the lease reaped")
        costs = distinct_costs(s)
        reaped = [c for c in costs.values() if c["model"] == "a1"]
        assert len(reaped) == 1 and reaped[0]["estimated"] is True, costs
        assert reaped[0]["cost_nusd"] == est["a1"][0]
        attempt = reaped[0]["attempt"]
        marker = rc.get(f"{prefix}{{ledger}}:settled:refused-0:{attempt}")
        assert marker == f"{est['a1'][0]} estimated".encode(), marker
        spent, reserved = budget_counters(s)
        assert reserved == 0
        assert spent == sum(c["cost_nusd"] for c in costs.values())
        assert round(r["cost_usd"] * 1e9) == spent
        assert len([d for d in w.log_lines()
                    if d.get("msg", "").startswith("the ledger refused to settle")]) == 1
        w.sigterm()
        assert w.wait(60) == 0
