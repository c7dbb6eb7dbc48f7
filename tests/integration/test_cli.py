"""bin/promptyard's operator subcommands (SPEC §10, issue 7): submit, collect,
status, estimate, dlq replay and dev, against the real worker, librdkafka's
mock cluster, a real redis-server and the fake provider.

Exit codes per SPEC §1: 0 success, 1 runtime failure (unreachable broker,
incomplete collect), 2 usage or configuration error (bad flag, bad config,
bad JSONL line: the message names the file, the line and the field)."""
import base64
import json
import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.lib import procs
from tests.lib.kafkautil import consume_all, produce
from tests.lib.procs import REPO
from tests.lib.stack import (DEFAULT_MODELS, Stack, bin_path, child_env, end_offsets, free_port,
                             wait_until, write_config)

TIMEOUT = 300


def cli(*args, input=None, timeout=120, env=None):
    """Runs bin/promptyard; returns the CompletedProcess (text)."""
    return subprocess.run([bin_path("promptyard"), *[str(a) for a in args]], input=input,
                          capture_output=True, text=True, timeout=timeout, env=child_env(env))


def jsonl(path, rows):
    """Writes rows (dicts are dumped, str written as they are) as JSON Lines."""
    Path(path).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def batch_line(i, model="gpt-4o-mini", **body):
    b = {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
         "max_tokens": 64}
    b.update(body)
    return {"custom_id": f"req-{i:03d}", "method": "POST", "url": "/v1/chat/completions", "body": b}


def offline_config(tmpdir):
    """A valid config whose brokers and Redis refuse connections."""
    dead = free_port()
    cfg = {"kafka": {"brokers": f"127.0.0.1:{dead}", "group": "g", "input_topics": ["llm.jobs"],
                     "results_topic": "llm.results", "costs_topic": "llm.costs",
                     "dlq_topic": "llm.dlq"},
           "redis": {"host": "127.0.0.1", "port": dead, "timeout_ms": 500},
           "worker": {"default_budget": "default"},
           "providers": [{"name": "openai", "type": "openai", "base_url": "http://127.0.0.1:1/v1",
                          "api_key_env": "NOT_SET_ANYWHERE_KEY"}],
           "models": [dict(DEFAULT_MODELS[0], provider="openai")],
           "budgets": [{"name": "default", "limit_usd": 10.0, "period": "none"}]}
    path = Path(tmpdir) / "offline.cfg"
    write_config(path, cfg)
    return path


# ---------------------------------------------------------------- usage errors

def test_usage_errors_exit_2(tmpdir):
    cfg = offline_config(tmpdir)
    jobs = jsonl(Path(tmpdir) / "jobs.jsonl", [{"id": "a", "prompt": "x"}])
    bad_cfg = Path(tmpdir) / "bad.cfg"
    bad_cfg.write_text('kafka: { brokers = "x"; };\nworker: { max_attempts = "many"; };\n')
    cases = [
        (["submit", jobs], "-c FILE is required"),
        (["submit", "-c", Path(tmpdir) / "missing.cfg", jobs], "missing.cfg"),
        (["submit", "-c", bad_cfg, jobs], "bad.cfg:2"),
        (["submit", "-c", cfg], "expected one FILE"),
        (["submit", "-c", cfg, "--strategy", "random", jobs], "--strategy"),
        (["submit", "-c", cfg, "--budget", "nope", jobs], "--budget: unknown budget \"nope\""),
        (["submit", "-c", cfg, Path(tmpdir) / "nope.jsonl"], "nope.jsonl"),
        (["submit", "-c", cfg, "--bogus", jobs], ""),
        (["collect", "-c", cfg], "--out FILE is required"),
        (["collect", "-c", cfg, "--out", "x", "--expect", "3", "--ids", jobs], "exclude"),
        (["collect", "-c", cfg, "--out", "x", "--expect", "0"], "--expect"),
        (["collect", "-c", cfg, "--out", "x", "--format", "xml"], "--format"),
        (["collect", "-c", cfg, "--out", "x", "--timeout", "soon"], "--timeout"),
        (["status", "-c", cfg, "--max-results", "-1"], "--max-results"),
        (["estimate", "-c", cfg], "expected one FILE"),
        (["estimate", "-c", cfg, "--strategy", "x", jobs], "--strategy"),
        (["dlq", "-c", cfg], "replay"),
        (["dlq", "replay", "-c", cfg, "--code", "oops"], "unknown error code \"oops\""),
        (["dlq", "replay", "-c", cfg, "--max", "0"], "--max"),
        (["dev", "--count", "0"], "--count"),
        (["dev", "extra"], ""),
    ]
    for args, needle in cases:
        r = cli(*args)
        assert r.returncode == 2, f"{args}: exit {r.returncode}: {r.stderr}"
        assert needle in r.stderr, f"{args}: {needle!r} not in {r.stderr!r}"
    for sub in ("submit", "collect", "status", "estimate", "dev"):
        r = cli(sub, "--help")
        assert r.returncode == 0 and "usage: promptyard " + sub in r.stdout, (sub, r.stdout)
    r = cli("dlq", "--help")
    assert r.returncode == 0 and "dlq replay" in r.stdout


def test_unreachable_broker_exit_1(tmpdir):
    cfg = offline_config(tmpdir)
    jobs = jsonl(Path(tmpdir) / "jobs.jsonl", [{"id": f"a{i}", "prompt": "x"} for i in range(3)])
    for args in (["submit", "-c", cfg, jobs],
                 ["collect", "-c", cfg, "--out", Path(tmpdir) / "out.jsonl", "--expect", "3"],
                 ["status", "-c", cfg],
                 ["dlq", "replay", "-c", cfg]):
        t0 = time.monotonic()
        r = cli(*args, timeout=60)
        assert r.returncode == 1, f"{args[0]}: exit {r.returncode}: {r.stderr}"
        assert "cannot reach the brokers" in r.stderr, f"{args[0]}: {r.stderr}"
        assert time.monotonic() - t0 < 30, f"{args[0]} took {time.monotonic() - t0:.0f} s"
    assert not (Path(tmpdir) / "out.jsonl").exists()
    # estimate needs no Kafka at all, and says when it cannot read Redis.
    r = cli("estimate", "-c", cfg, "--json", jobs)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["budget_source"] == "config" and "Redis unreachable" in r.stderr
    assert doc["jobs"] == 3 and doc["routed"] == 3


# ---------------------------------------------------------------- submit

def test_submit_rejects_a_file_with_any_bad_line():
    with Stack() as s:
        good = [{"id": f"g{i}", "prompt": f"hello {i}"} for i in range(6)]
        rows = [
            good[0],
            '{"id": "broken", "prompt": ',                                  # 2: not JSON
            good[1],
            {"id": "b4", "prompt": "x", "budget": "nope"},                  # 4: unknown budget
            "",                                                             # blank: skipped
            {"id": "g0", "prompt": "again"},                                # 6: duplicate id
            dict(batch_line(7), url="/v1/embeddings"),                      # 7: not chat
            {"custom_id": "img", "body": {"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "http://x"}}]}]}},  # 8: image part
            {"id": "b9", "prompt": "x", "max_tokens": 0},                   # 9: max_tokens
            good[2],
        ]
        path = jsonl(s.dir / "bad.jsonl", rows)
        r = cli("submit", "-c", s.config_path, path)
        assert r.returncode == 2, r.stderr
        err = r.stderr
        for needle in (f"{path}:2: value: invalid JSON", f"{path}:4: budget", f"{path}:6: id",
                       f"{path}:7: url", f"{path}:8: body.messages[0].content[0]",
                       f"{path}:9: max_tokens", "6 bad lines of 9: nothing was sent"):
            assert needle in err, f"{needle!r} not in {err!r}"
        assert ":1:" not in err and ":3:" not in err and ":5:" not in err and ":10:" not in err
        assert sum(end_offsets(s.bootstrap, s.jobs_topic).values()) == 0, "something was produced"


def test_submit_stdin_defaults_and_collect_native():
    with Stack() as s:
        jobs = [{"id": f"n{i}", "prompt": f"Summarise item {i}."} for i in range(12)]
        jobs[3]["strategy"] = "fastest"          # kept: only missing fields get the defaults
        jobs[4]["budget"] = "default"
        text = "".join(json.dumps(j) + "\n" for j in jobs)
        r = cli("submit", "-c", s.config_path, "--strategy", "cheapest", "--budget", "default", "-",
                input=text)
        assert r.returncode == 0, r.stderr
        assert "submitted 12 jobs to llm.jobs" in r.stdout
        msgs = consume_all(s.bootstrap, s.jobs_topic, 12, timeout_s=30)
        assert len(msgs) == 12
        by_id = {m.key.decode(): m.json() for m in msgs}   # key = id
        assert set(by_id) == {j["id"] for j in jobs}
        assert by_id["n0"]["strategy"] == "cheapest" and by_id["n0"]["budget"] == "default"
        assert by_id["n3"]["strategy"] == "fastest"

        s.worker()
        out = s.dir / "results.jsonl"
        r = cli("collect", "-c", s.config_path, "--out", out, "--expect", 12, "--timeout", 120)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert sorted(x["id"] for x in lines) == sorted(by_id)
        assert all(x["status"] == "ok" and x["content"] for x in lines)
        assert not (s.dir / "results.jsonl.tmp").exists()
        # --out - : the results on stdout, the summary on stderr.
        r = cli("collect", "-c", s.config_path, "--out", "-", "--expect", 12, "--timeout", 60)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.splitlines()) == 12 and "collected 12 results" in r.stderr
        # No expectation: everything up to the end of the topic.
        r = cli("collect", "-c", s.config_path, "--out", s.dir / "all.jsonl")
        assert r.returncode == 0 and len((s.dir / "all.jsonl").read_text().splitlines()) == 12


# ---------------------------------------------------------------- OpenAI Batch

def test_openai_batch_100_requests_round_trip():
    with Stack() as s:
        rows = []
        for i in range(100):
            if i % 2:
                rows.append(batch_line(i))                   # a catalog model: pinned
            elif i % 4 == 0:
                rows.append(batch_line(i, model="gpt-4.1-2025-04-14"))   # unknown: dropped
            else:
                line = batch_line(i, model="gpt-4.1-2025-04-14", max_completion_tokens=32,
                                  response_format={"type": "json_schema", "json_schema": {}},
                                  seed=7)
                line["body"]["messages"][1]["content"] = [{"type": "text", "text": "part one"},
                                                          {"type": "text", "text": "part two"}]
                line["body"]["messages"][0]["role"] = "developer"
                rows.append(line)
        path = jsonl(s.dir / "batch.jsonl", rows)
        r = cli("submit", "-c", s.config_path, path)
        assert r.returncode == 0, r.stderr
        assert "submitted 100 jobs" in r.stdout and "100 from OpenAI Batch" in r.stdout
        # Each note once, however many lines it concerns.
        assert r.stderr.count('body.model "gpt-4.1-2025-04-14" (50 lines) is not a catalog model') == 1
        assert r.stderr.count("ignored: seed") == 1 and r.stderr.count("json_schema (25 lines)") == 1

        jobs = {m.key.decode(): m.json() for m in consume_all(s.bootstrap, s.jobs_topic, 100)}
        assert jobs["req-001"]["model"] == "gpt-4o-mini" and "model" not in jobs["req-000"]
        assert jobs["req-002"]["messages"][0] == {"role": "system", "content": "Be brief."}
        assert jobs["req-002"]["messages"][1]["content"] == "part one\npart two"
        assert jobs["req-002"]["max_tokens"] == 32
        assert jobs["req-002"]["response_format"] == {"type": "json_object"}

        s.worker()
        out = s.dir / "output.jsonl"
        r = cli("collect", "-c", s.config_path, "--out", out, "--format", "openai-batch",
                "--expect", 100, "--timeout", 180)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        ids = [x["custom_id"] for x in lines]
        assert sorted(ids) == sorted(f"req-{i:03d}" for i in range(100)), "each custom_id once"
        for x in lines:
            assert x["id"].startswith("batch_req_") and x["error"] is None
            resp = x["response"]
            assert resp["status_code"] == 200 and resp["request_id"]
            body = resp["body"]
            assert body["object"] == "chat.completion" and body["choices"][0]["index"] == 0
            assert body["choices"][0]["message"]["role"] == "assistant"
            assert body["choices"][0]["message"]["content"]
            assert body["choices"][0]["finish_reason"] in ("stop", "length")
            u = body["usage"]
            assert u["prompt_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
            if int(x["custom_id"][4:]) % 2:
                assert body["model"] == "gpt-4o-mini", body["model"]
        # --ids takes the submitted file itself.
        r = cli("collect", "-c", s.config_path, "--out", s.dir / "again.jsonl", "--ids", path,
                "--format", "openai-batch", "--timeout", 60)
        assert r.returncode == 0, r.stderr
        again = [json.loads(x)["custom_id"] for x in (s.dir / "again.jsonl").read_text().splitlines()]
        assert again == [f"req-{i:03d}" for i in range(100)], "in the order of --ids"


# ---------------------------------------------------------------- collect

def result(rid, status, content=None, code=None, n=0):
    r = {"id": rid, "status": status, "model": "gpt-4o-mini", "provider": "openai",
         "usage": {"input_tokens": 10 + n, "output_tokens": 5, "cached_input_tokens": 0},
         "cost_usd": 0.000001, "attempts": [], "latency_ms": 5, "metadata": {},
         "worker": "w", "completed_at": f"2026-11-22T03:00:0{n}.000Z"}
    if status == "ok":
        r.update(content=content, finish_reason="stop")
    else:
        r["error"] = {"code": code, "message": f"{code} #{n}"}
    return r


def test_collect_keeps_first_ok_and_latest_error_and_times_out():
    with Stack(partitions=1) as s:
        produce(s.bootstrap, s.results_topic, [
            result("a", "error", code="providers_failed", n=1),
            result("a", "ok", content="first ok", n=2),
            result("a", "ok", content="second ok", n=3),
            result("b", "error", code="providers_failed", n=4),
            result("b", "error", code="budget_exhausted", n=5),
            result("c", "ok", content="only", n=6),
            b"not json",
            result("zz", "ok", content="not asked for", n=7),
        ])
        ids = jsonl(s.dir / "ids.txt", ["c", "b", "a", "d"])
        out = s.dir / "out.jsonl"
        t0 = time.monotonic()
        r = cli("collect", "-c", s.config_path, "--out", out, "--ids", ids, "--timeout", 3)
        assert r.returncode == 1, "incomplete: exit 1"
        assert time.monotonic() - t0 < 30
        assert "timeout: 3 of 4 results; missing: d" in r.stderr, r.stderr
        got = [json.loads(x) for x in out.read_text().splitlines()]   # written anyway
        assert [g["id"] for g in got] == ["c", "b", "a"], "in --ids order"
        assert got[2]["content"] == "first ok"
        assert got[1]["error"]["code"] == "budget_exhausted", "the latest error"

        r = cli("collect", "-c", s.config_path, "--out", out, "--ids", ids, "--timeout", 2,
                "--format", "openai-batch")
        assert r.returncode == 1
        got = {g["custom_id"]: g for g in map(json.loads, out.read_text().splitlines())}
        assert got["b"]["response"] is None
        assert got["b"]["error"] == {"code": "budget_exhausted", "message": "budget_exhausted #5"}
        assert got["a"]["response"]["body"]["choices"][0]["message"]["content"] == "first ok"
        assert got["a"]["response"]["body"]["created"] == 1795316402

        r = cli("collect", "-c", s.config_path, "--out", out, "--expect", 4, "--timeout", 10)
        assert r.returncode == 0, r.stderr
        assert len(out.read_text().splitlines()) == 4
        assert "1 messages of llm.results were not results" in r.stderr

        # Complete early in the topic is not done: a success further on (a DLQ
        # replay) still replaces the error read first.
        produce(s.bootstrap, s.results_topic, [result("b", "ok", content="replayed", n=8)])
        only_b = jsonl(s.dir / "b.txt", ["b"])
        r = cli("collect", "-c", s.config_path, "--out", out, "--ids", only_b, "--timeout", 10)
        assert r.returncode == 0, r.stderr
        assert json.loads(out.read_text())["content"] == "replayed"


# ---------------------------------------------------------------- status

def test_status_budgets_jobs_and_lag():
    with Stack() as s:
        s.produce_jobs([json.dumps({"id": f"s{i}", "prompt": f"status {i}"}) for i in range(20)]
                       + [b'{"id": "bad1"', b'{"id": "bad2", "prompt": 3}'])
        r = cli("status", "-c", s.config_path, "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["lag"]["total"] == 22, "nothing consumed yet"
        assert doc["budgets"][0]["name"] == "default" and doc["budgets"][0]["source"] == "config"

        s.worker()
        results = s.results(22, timeout_s=120)
        assert len(results) == 22
        prefix = s.config["redis"]["key_prefix"]
        rc = s.redis.client(decode_responses=True)
        # A budget only Redis knows (`budget set` writes these keys).
        rc.sadd(prefix + "{ledger}:budgets", "default", "zeta")
        rc.hset(prefix + "{ledger}:meta:zeta", mapping={"limit_nusd": 5_000_000_000,
                                                         "period": "none", "parent": ""})
        rc.hset(prefix + "{ledger}:b:zeta:all", mapping={"spent": 1_500_000_000, "reserved": 7})

        def settled():
            d = json.loads(cli("status", "-c", s.config_path, "--json").stdout)
            return d if d["lag"]["total"] == 0 else None
        doc = wait_until(settled, 30, interval=0.5, what="lag 0")
        spent = int(rc.hget(prefix + "{ledger}:b:default:all", "spent"))
        costs = s.costs(20, timeout_s=30)
        assert spent > 0 and spent == sum(c["cost_nusd"] for c in costs)
        b = {x["name"]: x for x in doc["budgets"]}
        assert b["default"]["spent_nusd"] == spent
        # Limit, period and parent come from Redis once a worker wrote them there.
        meta = rc.exists(prefix + "{ledger}:meta:default")
        assert b["default"]["source"] == ("redis" if meta else "config")
        assert b["default"]["remaining_nusd"] == 100 * 10**9 - spent
        assert b["zeta"] == dict(b["zeta"], source="redis", limit_nusd=5_000_000_000,
                                 spent_nusd=1_500_000_000, reserved_nusd=7, window="all")
        assert doc["jobs"]["ok"] == 20 and doc["jobs"]["error"] == 2
        assert doc["jobs"]["by_code"] == {"invalid_job": 2} and doc["jobs"]["complete"]
        assert {p["partition"] for p in doc["lag"]["partitions"]} == {0, 1, 2}
        assert doc["errors"] == []

        r = cli("status", "-c", s.config_path)
        assert r.returncode == 0, r.stderr
        for needle in ("BUDGET", "default", "zeta", "20 ok, 2 error (invalid_job 2)", "LAG (group",
                       "total"):
            assert needle in r.stdout, (needle, r.stdout)
        # Bounded reading: the newest results only, and it says so.
        doc = json.loads(cli("status", "-c", s.config_path, "--json", "--max-results", 3).stdout)
        assert doc["jobs"]["read"] < 22 and not doc["jobs"]["complete"]
        # Redis gone: what Kafka says is still shown, exit 1.
        r = cli("status", "-c", s.config_path, "--redis", f"127.0.0.1:{free_port()}")
        assert r.returncode == 1 and "LAG" in r.stdout and "budgets not shown" in r.stderr


# ---------------------------------------------------------------- estimate

def spec_estimate(job, model):
    """SPEC §6 estimate in nano-USD (prices in USD/Mtok)."""
    msgs = job.get("messages") or [{"content": job["prompt"]}]
    text = sum(len(m["content"].encode()) for m in msgs)
    est_input = math.ceil(text / 3) + 4 * len(msgs) + 3
    max_tokens = job.get("max_tokens", model["default_max_tokens"])
    return math.ceil((est_input * round(model["input_usd_per_mtok"] * 1e9)
                      + max_tokens * round(model["output_usd_per_mtok"] * 1e9)) / 1e6)


def test_estimate_projects_cost_and_budget_cover():
    with Stack() as s:
        jobs = [{"id": f"e{i}", "prompt": "word " * (i * 37), "max_tokens": 100 + i} for i in range(30)]
        jobs.append({"id": "sys", "messages": [{"role": "system", "content": "Be brief é"},
                                               {"role": "user", "content": "漢字 " * 50}]})
        jobs.append({"id": "capped", "prompt": "x", "max_cost_usd": 0.000000001})
        jobs.append({"id": "json", "prompt": "give json", "models": ["gemini-flash"],
                     "capabilities": ["tools"]})                   # gemini-flash has no tools
        path = jsonl(s.dir / "jobs.jsonl", jobs)
        prefix = s.config["redis"]["key_prefix"]
        s.redis.client().hset(prefix + "{ledger}:b:default:all", "spent", 99_999_000_000)

        r = cli("estimate", "-c", s.config_path, "--strategy", "cheapest", "--json", path)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        models = {m["name"]: m for m in DEFAULT_MODELS}
        want = 0
        per_model = {}
        for j in jobs[:31]:
            best = min(models.values(), key=lambda m: (spec_estimate(j, m), -m["quality"], m["name"]))
            want += spec_estimate(j, best)
            per_model[best["name"]] = per_model.get(best["name"], 0) + spec_estimate(j, best)
        assert doc["total_nusd"] == want, (doc["total_nusd"], want)
        assert {m["model"]: m["estimate_nusd"] for m in doc["models"]} == per_model
        assert doc["routed"] == 31 and doc["jobs"] == 33
        assert doc["unroutable"] == {"cost_cap_exceeded": 1, "no_eligible_model": 1}
        assert doc["upper_bound"] is True and doc["budget_source"] == "redis"
        b = doc["budgets"][0]
        assert b["name"] == "default" and b["remaining_nusd"] == 100 * 10**9 - 99_999_000_000
        assert b["covered"] == (want <= b["remaining_nusd"]) and doc["covered"] == b["covered"]

        r = cli("estimate", "-c", s.config_path, path)
        assert r.returncode == 0 and "upper bounds" in r.stdout and "TOTAL" in r.stdout
        assert "read from Redis" in r.stdout
        r = cli("estimate", "-c", s.config_path, "--redis", f"127.0.0.1:{free_port()}", "--json", path)
        assert r.returncode == 0 and json.loads(r.stdout)["budget_source"] == "config"
        assert json.loads(r.stdout)["budgets"][0]["remaining_nusd"] == 100 * 10**9

        bad = jsonl(s.dir / "bad.jsonl", jobs[:2] + [{"id": "nb", "prompt": "x", "budget": "ghost"}])
        r = cli("estimate", "-c", s.config_path, bad)
        assert r.returncode == 2 and f"{bad}:3: budget" in r.stderr, r.stderr


# ---------------------------------------------------------------- dlq replay

def dlq_record(job, code, offset, raw=None):
    rec = {"job": job, "error": {"code": code, "message": "m"},
           "source": {"topic": "llm.jobs", "partition": 0, "offset": offset},
           "failed_at": "2026-11-22T03:00:00.000Z"}
    if raw is not None:
        rec["job_base64"] = base64.b64encode(raw).decode()
    return rec


def test_dlq_replay_filters_dedupes_and_keeps_bytes_and_headers():
    with Stack(partitions=1, topics={"other": 1}) as s:
        x1 = {"id": "x1", "prompt": "first"}
        records = [
            dlq_record(x1, "providers_failed", 1),
            dlq_record("not json {", "invalid_job", 2),
            dlq_record("\ufffd\ufffd raw", "invalid_job", 3, raw=b"\xff\xfe raw"),
            dlq_record(x1, "budget_exhausted", 4),          # x1 failed again: replayed once
            dlq_record({"id": "x2", "prompt": "second", "metadata": {"k": [1, 2]}}, "expired", 5),
        ]
        headers = [[("trace", b"t-1")], None, [("trace", b"t-3")], [("trace", b"t-4")], None]
        produce(s.bootstrap, s.dlq_topic, records, keys=["x1", None, "k3", "x1", "x2"], headers=headers)

        r = cli("dlq", "replay", "-c", s.config_path, "--dry-run")
        assert r.returncode == 0 and "would replay 2 jobs" in r.stdout, r.stdout
        assert sum(end_offsets(s.bootstrap, s.jobs_topic).values()) == 0

        r = cli("dlq", "replay", "-c", s.config_path)
        assert r.returncode == 0, r.stderr
        assert "replayed 2 jobs to llm.jobs" in r.stdout and "1 older copies" in r.stdout
        assert "2 other codes" in r.stdout, "invalid_job is left out unless asked for"
        got = consume_all(s.bootstrap, s.jobs_topic, 2, timeout_s=30)
        assert [(m.key, m.json()) for m in got] == [(b"x1", x1), (b"x2", records[4]["job"])]
        assert got[0].headers == [("trace", b"t-4")], "the latest record's (original) headers"

        r = cli("dlq", "replay", "-c", s.config_path, "--code", "invalid_job", "--topic", "other")
        assert r.returncode == 0, r.stderr
        got = consume_all(s.bootstrap, "other", 2, timeout_s=30)
        assert [m.value for m in got] == [b"not json {", b"\xff\xfe raw"], "exact original bytes"
        assert got[1].key == b"k3" and got[1].headers == [("trace", b"t-3")]

        r = cli("dlq", "replay", "-c", s.config_path, "--code", "expired", "--max", 1)
        assert r.returncode == 0 and "replayed 1 job to" in r.stdout


def test_dlq_replay_after_provider_outage_end_to_end():
    # The breaker would turn later failures into no_eligible_model (circuit
    # open): keep it shut, this test is about the DLQ.
    with Stack(partitions=2, config={"router": {"breaker_failures": 1000}}) as s:
        s.set_fake_rules([{"prefix": "/openai/v1", "status": 500}])
        ids = [f"r{i}" for i in range(8)]
        s.produce_jobs([json.dumps({"id": i, "prompt": "hi", "models": ["gpt-4o-mini"]}) for i in ids])
        s.worker()
        dlq = s.dlq(8, timeout_s=120)
        assert {d["error"]["code"] for d in dlq} == {"providers_failed"}
        s.set_fake_rules([])                      # the provider is back
        r = cli("dlq", "replay", "-c", s.config_path, "--code", "providers_failed")
        assert r.returncode == 0 and "replayed 8 jobs" in r.stdout, r.stdout + r.stderr
        idfile = jsonl(s.dir / "ids.txt", ids)
        out = s.dir / "out.jsonl"

        def all_ok():
            cli("collect", "-c", s.config_path, "--out", out, "--ids", idfile, "--timeout", 5)
            got = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
            return len(got) == 8 and all(g["status"] == "ok" for g in got)
        try:
            wait_until(all_ok, 120, interval=1, what="replayed jobs ok (ok replaces the error)")
        except TimeoutError:
            raise AssertionError(f"not all ok: {out.read_text()[:3000] if out.exists() else '-'}")


# ---------------------------------------------------------------- dev

def descendants(pid):
    """Pids whose parent is pid (one level: dev's children)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d))
    return out


def alive(pid):
    """True if pid runs and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_dev(tmpdir, *args):
    tmp = Path(tmpdir) / "t"
    tmp.mkdir()
    out, err = open(Path(tmpdir) / "dev.out", "wb"), open(Path(tmpdir) / "dev.err", "wb")
    procs.attach_log("dev stderr", Path(tmpdir) / "dev.err")
    p = procs.Proc([bin_path("promptyard"), "dev", *args], env={"TMPDIR": str(tmp)}, stdout=out,
                   stderr=err)
    return p, tmp, out, err


def watch_children(p, seen, until=None, timeout=240):
    """Gathers p's descendants into seen while p runs, until until() holds or
    timeout passes. The 0.1 s is a sampling period (children come and go),
    not a wait for one event."""
    deadline = time.monotonic() + timeout
    while p.running() and time.monotonic() < deadline and (until is None or not until()):
        seen.update(descendants(p.pid))
        time.sleep(0.1)


def test_dev_runs_50_jobs_and_leaves_nothing_behind(tmpdir):
    p, tmp, out, err = start_dev(tmpdir, "--count", "50")
    seen = set()
    watch_children(p, seen)
    rc = p.wait(10)
    out.close()
    err.close()
    stdout = (Path(tmpdir) / "dev.out").read_text()
    stderr = (Path(tmpdir) / "dev.err").read_text()
    assert rc == 0, stderr[-3000:]
    assert len(seen) >= 3, f"redis, simulator and worker were started: {seen}"
    assert "50 of 50 jobs finished" in stdout, stdout
    for needle in ("MODEL", "SPEND", "BUDGET", "demo", "org", "provider attempts"):
        assert needle in stdout, (needle, stdout)
    # The first 50 samples hold the document jobs (PDFs and scans inline):
    # every ok json_schema job's result has a parsed the worker validated,
    # the tool jobs came back with tool calls.
    first = [json.loads(x) for x in
             (REPO / "deploy" / "samples" / "jobs.jsonl").read_text().splitlines()[:50]]
    schema_jobs = sum(1 for j in first
                      if j.get("response_format", {}).get("type") == "json_schema")
    tool_jobs = sum(1 for j in first
                    if j.get("tools") and j["messages"][-1]["role"] != "tool")
    assert schema_jobs >= 5 and tool_jobs >= 2, (schema_jobs, tool_jobs)
    m = re.search(r"(\d+) ok, (\d+) error\n", stdout)
    st = re.search(r"structured output: (\d+) with parsed JSON \((\d+) validated against the "
                  r"job's json_schema\), (\d+) with tool calls, (\d+) refusals?\n", stdout)
    assert m and st, stdout
    parsed, validated, tools = int(st.group(1)), int(st.group(2)), int(st.group(3))
    if m.group(2) == "0":  # the simulator's failures all failed over
        assert (validated, tools) == (schema_jobs, tool_jobs), stdout
    assert 1 <= validated <= parsed and tools >= 1, stdout
    assert re.search(r"answers that broke their schema: \d+ \(invalid_output", stdout), stdout
    # Redis' counters equal the cost records for every budget (no "differs").
    assert "differs" not in stdout, stdout
    assert all(not alive(pid) for pid in seen), [pid for pid in seen if alive(pid)]
    try:
        os.killpg(p.pid, 0)
        assert False, "a process is left in dev's process group"
    except ProcessLookupError:
        pass
    assert list(tmp.iterdir()) == [], list(tmp.iterdir())


test_dev_runs_50_jobs_and_leaves_nothing_behind.timeout = 300


def test_dev_ctrl_c_stops_everything(tmpdir):
    p, tmp, out, err = start_dev(tmpdir, "--count", "3000")
    seen = set()

    def worker_started():
        for c in list(seen):
            try:
                if b"promptyard-worker" in Path(f"/proc/{c}/cmdline").read_bytes():
                    return True
            except OSError:
                pass
        return False
    watch_children(p, seen, until=worker_started, timeout=120)
    assert p.running(), (Path(tmpdir) / "dev.err").read_text()

    def results_coming():
        # dev's progress lines ("dev: results: N/3000 ...") once N > 0: mid-run.
        return re.search(r"dev: results: [1-9]", (Path(tmpdir) / "dev.err").read_text())
    watch_children(p, seen, until=results_coming, timeout=120)
    assert p.running() and results_coming(), (Path(tmpdir) / "dev.err").read_text()[-2000:]
    seen.update(descendants(p.pid))
    p.signal(signal.SIGINT)
    t0 = time.monotonic()
    rc = p.wait(60)
    out.close()
    err.close()
    stderr = (Path(tmpdir) / "dev.err").read_text()
    assert rc == 1, stderr[-2000:]
    assert time.monotonic() - t0 < 30
    assert "interrupted" in stderr and "nothing left running" in stderr, stderr[-2000:]
    assert len(seen) >= 3 and all(not alive(pid) for pid in seen)
    assert list(tmp.iterdir()) == []


test_dev_ctrl_c_stops_everything.timeout = 180
