"""The fake provider's batch APIs (SPEC §14) in their three formats, with raw
HTTP: each request of a batch answered exactly as its sync endpoint answers
the same body, the batches' states on the fake's own clock, errored and
expired shares, cancels (what ran is kept), batches that never end or fail
whole, list pagination, a 50,000-request output file streamed without the
fake's memory growing, faults of the batch calls, and the stats and
listing tests use to find orphan batches."""
import http.client
import json
import time

import jsonschema

from tests.lib.stack import FakeProvider

TIMEOUT = 180

OA, AN, GE = "/oa/v1", "/an/v1", "/ge/v1beta"
AN_HDRS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
GE_HDRS = {"x-goog-api-key": "k"}

WEATHER = {"type": "object",
           "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
           "required": ["city", "days"], "additionalProperties": False}
PLACE = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
         "required": ["city", "n"], "additionalProperties": False}


# ---------------------------------------------------------------- HTTP

def req(fp, method, path, body=None, headers=None, raw=None, timeout=60):
    """(status, headers with lower-case names, parsed JSON or bytes) of one call."""
    if path.startswith("http://"):
        path = "/" + path.split("/", 3)[3]
    hdrs = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", fp.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        out = r.read()
        got = {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()
    if got.get("content-type", "").startswith("application/json"):
        out = json.loads(out)
    return r.status, got, out


def ok(fp, method, path, body=None, headers=None, raw=None):
    status, _, out = req(fp, method, path, body, headers, raw)
    assert status == 200, (method, path, status, out)
    return out


def until(fn, pred, timeout=60, interval=0.02):
    """Calls fn until pred holds for its value (bounded in time); returns it."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if pred(v):
            return v
        assert time.monotonic() < deadline, f"condition not met, last value: {v!r}"[:800]
        time.sleep(interval)


def jsonl(data):
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


VOLATILE = {"id", "created", "responseId", "signature"}


def norm(v):
    """An answer without what differs between two calls (ids, times)."""
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


def sync_answer(fp, path, body, headers=None):
    """(status, answer) of the sync endpoint for body."""
    status, _, out = req(fp, "POST", path, body, headers)
    return status, out


# ---------------------------------------------------------------- the formats

def oa_bodies(model="gpt-x"):
    msg = [{"role": "user", "content": "weather in Oslo?"}]
    return [
        {"model": model, "messages": [{"role": "user", "content": "hello there"}]},
        {"model": model, "messages": msg, "response_format": {
            "type": "json_schema", "json_schema": {"name": "place", "strict": True, "schema": PLACE}}},
        {"model": model, "messages": msg,
         "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}]},
        {"model": model, "messages": [{"role": "user", "content": "PLEASE_REFUSE this"}]},
        {"model": model, "messages": msg, "reasoning_effort": "low"},
        {"model": model, "messages": []},  # invalid: the sync endpoint's 400
    ]


def oa_upload(fp, bodies=None, lines=None, prefix=OA, token="tok", raw=None, headers=None):
    """Uploads a batch input file; returns (status, answer)."""
    if raw is None:
        if lines is None:
            lines = [{"custom_id": f"{token}-{i}", "method": "POST", "url": "/v1/chat/completions",
                      "body": b} for i, b in enumerate(bodies)]
        raw = "".join(json.dumps(line) + "\n" for line in lines).encode()
    boundary = "fakebatch-boundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n").encode()
    form += raw + f"\r\n--{boundary}--\r\n".encode()
    hdrs = dict(headers or {}, **{"Content-Type": f"multipart/form-data; boundary={boundary}"})
    status, _, out = req(fp, "POST", prefix + "/files", raw=form, headers=hdrs)
    return status, out


def oa_submit(fp, bodies=None, lines=None, prefix=OA, token="tok", metadata=None):
    status, f = oa_upload(fp, bodies, lines, prefix, token)
    assert status == 200, f
    return ok(fp, "POST", prefix + "/batches",
              {"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
               "completion_window": "24h",
               "metadata": metadata if metadata is not None else {"promptyard_token": token}})


def oa_get(fp, bid, prefix=OA):
    return ok(fp, "GET", f"{prefix}/batches/{bid}")


OA_FINAL = {"completed", "failed", "expired", "cancelled"}


def oa_wait(fp, bid, prefix=OA):
    return until(lambda: oa_get(fp, bid, prefix), lambda b: b["status"] in OA_FINAL)


def oa_file(fp, fid, prefix=OA):
    return jsonl(ok(fp, "GET", f"{prefix}/files/{fid}/content")) if fid else []


def an_bodies(model="claude-x"):
    msg = [{"role": "user", "content": "weather in Oslo?"}]
    return [
        {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": "hello there"}]},
        {"model": model, "max_tokens": 200, "messages": msg,
         "output_config": {"format": {"type": "json_schema", "schema": PLACE}}},
        {"model": model, "max_tokens": 200, "messages": msg,
         "tools": [{"name": "weather", "input_schema": WEATHER}]},
        {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": "PLEASE_REFUSE"}]},
        {"model": model, "max_tokens": 4000, "messages": msg,
         "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"model": model, "messages": msg},  # invalid: no max_tokens
    ]


def an_submit(fp, bodies, prefix=AN, token="tok"):
    return ok(fp, "POST", prefix + "/messages/batches",
              {"requests": [{"custom_id": f"{token}-{i}", "params": b} for i, b in enumerate(bodies)]},
              AN_HDRS)


def an_get(fp, bid, prefix=AN):
    return ok(fp, "GET", f"{prefix}/messages/batches/{bid}", headers=AN_HDRS)


def an_wait(fp, bid, prefix=AN):
    return until(lambda: an_get(fp, bid, prefix), lambda b: b["processing_status"] == "ended")


def an_results(fp, batch):
    return jsonl(ok(fp, "GET", batch["results_url"], headers=AN_HDRS))


def ge_bodies():
    q = [{"role": "user", "parts": [{"text": "weather in Oslo?"}]}]
    return [
        {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]},
        {"contents": q, "generationConfig": {"responseMimeType": "application/json",
                                             "responseJsonSchema": PLACE}},
        {"contents": q, "tools": [{"functionDeclarations": [
            {"name": "weather", "parametersJsonSchema": WEATHER}]}]},
        {"contents": [{"role": "user", "parts": [{"text": "PLEASE_REFUSE"}]}]},
        {"contents": q, "generationConfig": {"thinkingConfig": {"thinkingBudget": 512}}},
        {"contents": []},  # invalid
    ]


def ge_submit(fp, bodies, model="gemini-x", prefix=GE, token="tok"):
    body = {"batch": {"displayName": f"promptyard-{token}", "inputConfig": {"requests": {
        "requests": [{"request": b, "metadata": {"key": f"{token}-{i}"}} for i, b in enumerate(bodies)]}}}}
    return ok(fp, "POST", f"{prefix}/models/{model}:batchGenerateContent", body, GE_HDRS)


def ge_get(fp, name, prefix=GE):
    return ok(fp, "GET", f"{prefix}/{name}", headers=GE_HDRS)


GE_FINAL = {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED",
            "BATCH_STATE_EXPIRED"}


def ge_wait(fp, name, prefix=GE):
    return until(lambda: ge_get(fp, name, prefix), lambda op: op["metadata"]["state"] in GE_FINAL)


def ge_inline(op):
    return op["metadata"].get("output", {}).get("inlinedResponses", {}).get("inlinedResponses", [])


def listing(fp, requests=False):
    return ok(fp, "GET", "/_control/batches" + ("?requests=1" if requests else ""))["batches"]


def batch_log(fp, batch_id):
    return [e for e in fp.requests() if e["batch_id"] == batch_id]


def in_order(seen, order):
    """seen (deduplicated in order) follows order."""
    steps = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    return [order.index(s) for s in steps] == sorted(order.index(s) for s in steps)


# ---------------------------------------------------------------- answers as sync

def test_fake_batch_openai_answers_as_its_sync_endpoint():
    fp = FakeProvider(rules=[{"prefix": OA, "batch_validating_ms": 300, "batch_finish_ms": 1500,
                              "batch_finalizing_ms": 300}])
    bodies = oa_bodies()
    b = oa_submit(fp, bodies, metadata={"promptyard_token": "tok", "run": "nightly"})
    assert b["status"] == "validating" and b["object"] == "batch" and b["id"].startswith("batch_")
    assert b["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert b["completion_window"] == "24h" and b["endpoint"] == "/v1/chat/completions"
    assert b["expires_at"] - b["created_at"] == 86400 and b["output_file_id"] is None

    seen = [b["status"]]
    done = until(lambda: oa_get(fp, b["id"]),
                 lambda x: seen.append(x["status"]) or x["status"] == "completed")
    assert in_order(seen, ["validating", "in_progress", "finalizing", "completed"]), seen
    assert done["request_counts"] == {"total": 6, "completed": 5, "failed": 1}, done
    assert done["metadata"] == {"promptyard_token": "tok", "run": "nightly"}
    assert done["in_progress_at"] and done["finalizing_at"] and done["completed_at"]
    assert done["cancelled_at"] is None and done["errors"] is None

    f = ok(fp, "GET", f"{OA}/files/{done['output_file_id']}")
    assert f["purpose"] == "batch_output" and f["object"] == "file"
    out, err = oa_file(fp, done["output_file_id"]), oa_file(fp, done["error_file_id"])
    assert len(out) == 5 and len(err) == 1
    # the requests ran in an order of their own, not the order asked
    assert [line["custom_id"] for line in out] != sorted(line["custom_id"] for line in out)
    n_sync = 0
    for line in out + err:
        i = int(line["custom_id"].split("-")[1])
        status, want = sync_answer(fp, OA + "/chat/completions", bodies[i])
        n_sync += 1
        assert line["response"]["status_code"] == status and line["error"] is None
        assert line["id"].startswith("batch_req_") and line["response"]["request_id"]
        assert norm(line["response"]["body"]) == norm(want), (i, line, want)
    assert err[0]["custom_id"] == "tok-5" and err[0]["response"]["status_code"] == 400
    answers = {int(line["custom_id"][4:]): line["response"]["body"] for line in out}
    jsonschema.validate(json.loads(answers[1]["choices"][0]["message"]["content"]), PLACE)
    assert answers[2]["choices"][0]["finish_reason"] == "tool_calls"
    assert answers[3]["choices"][0]["message"]["refusal"]
    assert answers[4]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0

    # each request ran once, logged with its batch; the sync calls alone are "requests"
    log = batch_log(fp, b["id"])
    assert sorted(e["custom_id"] for e in log) == [f"tok-{i}" for i in range(6)]
    assert [e["outcome"] for e in log].count("ok") == 5 and sum(e["billed"] for e in log) == 5
    assert {e["answer"] for e in log if e["billed"]} == {"text", "schema", "tool_call", "refusal"}
    st = fp.stats()
    assert st["requests"] == n_sync
    assert st["batches"]["created"]["openai"] == 1 and st["batches"]["live"] == 0
    assert st["batches"]["requests"] == {"answered": 5, "errored": 1, "expired": 0, "canceled": 0}
    assert st["batches"]["result_gets"] == 2 and st["batches"]["uploads"] == 1
    (entry,) = listing(fp, requests=True)
    assert entry["token"] == "tok" and entry["state"] == "completed" and entry["ended"]
    assert entry["result_gets"] == 2 and entry["answered"] == 5 and entry["pending"] == 0
    assert sorted(r["fate"] for r in entry["request_list"]) == ["answered"] * 5 + ["errored"]
    assert len({r["seq"] for r in entry["request_list"]}) == 6
    assert fp.stop() == 0


def test_fake_batch_anthropic_answers_as_its_sync_endpoint():
    fp = FakeProvider(rules=[{"prefix": AN, "batch_finish_ms": 1200}])
    bodies = an_bodies()
    b = an_submit(fp, bodies)
    assert b["type"] == "message_batch" and b["processing_status"] == "in_progress"
    assert b["request_counts"] == {"processing": 6, "succeeded": 0, "errored": 0, "canceled": 0,
                                   "expired": 0}
    assert b["results_url"] is None and b["ended_at"] is None and b["created_at"].endswith("Z")
    status, _, out = req(fp, "GET", f"{AN}/messages/batches/{b['id']}/results", headers=AN_HDRS)
    assert status == 400 and out["error"]["type"] == "invalid_request_error", out

    done = an_wait(fp, b["id"])
    assert done["request_counts"] == {"processing": 0, "succeeded": 5, "errored": 1, "canceled": 0,
                                      "expired": 0}
    assert done["results_url"] == \
        f"http://127.0.0.1:{fp.port}{AN}/messages/batches/{b['id']}/results"
    lines = an_results(fp, done)
    assert sorted(line["custom_id"] for line in lines) == [f"tok-{i}" for i in range(6)]
    for line in lines:
        i = int(line["custom_id"][4:])
        status, want = sync_answer(fp, AN + "/messages", bodies[i], AN_HDRS)
        if status == 200:
            assert line["result"]["type"] == "succeeded"
            assert norm(line["result"]["message"]) == norm(want), (i, line, want)
        else:
            assert (i, status, line["result"]["type"]) == (5, 400, "errored")
            assert line["result"]["error"] == want, line
    got = {int(line["custom_id"][4:]): line["result"].get("message") for line in lines}
    jsonschema.validate(json.loads(got[1]["content"][0]["text"]), PLACE)
    assert got[2]["stop_reason"] == "tool_use" and got[3]["stop_reason"] == "refusal"
    assert got[4]["content"][0]["type"] == "thinking"
    assert fp.stats()["batches"]["requests"]["answered"] == 5
    (entry,) = listing(fp)
    assert entry["token"] == "tok" and entry["custom_id_prefixes"] == ["tok"]
    assert fp.stop() == 0


def test_fake_batch_gemini_answers_as_its_sync_endpoint():
    fp = FakeProvider(rules=[{"prefix": GE, "batch_validating_ms": 200, "batch_finish_ms": 1200}])
    bodies = ge_bodies()
    op = ge_submit(fp, bodies)
    name = op["name"]
    assert name.startswith("batches/") and "done" not in op
    meta = op["metadata"]
    assert meta["state"] == "BATCH_STATE_PENDING" and meta["displayName"] == "promptyard-tok"
    assert meta["model"] == "models/gemini-x" and meta["name"] == name
    assert meta["batchStats"] == {"requestCount": "6", "pendingRequestCount": "6"}
    assert meta["createTime"].endswith("Z") and "endTime" not in meta

    seen = [meta["state"]]
    done = until(lambda: ge_get(fp, name),
                 lambda x: seen.append(x["metadata"]["state"]) or x.get("done"))
    assert in_order(seen, ["BATCH_STATE_PENDING", "BATCH_STATE_RUNNING", "BATCH_STATE_SUCCEEDED"])
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED" and "error" not in done
    assert done["metadata"]["batchStats"] == {"requestCount": "6", "successfulRequestCount": "5",
                                              "failedRequestCount": "1"}
    inline = ge_inline(done)
    assert done["response"]["inlinedResponses"]["inlinedResponses"] == inline
    assert done["response"]["@type"].endswith("GenerateContentBatchOutput")
    # in the order of the requests, each with its metadata
    assert [x["metadata"]["key"] for x in inline] == [f"tok-{i}" for i in range(6)]
    for i, x in enumerate(inline):
        status, want = sync_answer(fp, f"{GE}/models/gemini-x:generateContent", bodies[i], GE_HDRS)
        if status == 200:
            assert norm(x["response"]) == norm(want), (i, x, want)
        else:
            assert i == 5 and x["error"]["code"] == 3
            assert x["error"]["message"] == want["error"]["message"]
    jsonschema.validate(json.loads(inline[1]["response"]["candidates"][0]["content"]["parts"][0]["text"]),
                        PLACE)
    assert "functionCall" in inline[2]["response"]["candidates"][0]["content"]["parts"][0]
    assert inline[3]["response"]["candidates"][0]["finishReason"] == "SAFETY"
    assert inline[4]["response"]["usageMetadata"]["thoughtsTokenCount"] > 0
    (entry,) = listing(fp)
    assert entry["token"] == "tok" and entry["display_name"] == "promptyard-tok"

    # answers without their metadata, as users report Google sending: the order says
    fp.set_rules([{"prefix": GE, "batch_drop_metadata": True, "batch_finish_ms": 200}])
    inline = ge_inline(ge_wait(fp, ge_submit(fp, bodies[:3])["name"]))
    assert len(inline) == 3 and all("metadata" not in x for x in inline)
    assert [x["response"]["candidates"][0]["content"]["parts"][0].keys() for x in inline][2] == \
        {"functionCall"}
    assert fp.stop() == 0


# ---------------------------------------------------------------- shares

def test_fake_batch_errored_and_expired_shares():
    """error share 0.2 of 10: the 5th and 10th run fail; expire share 0.25 of
    the 8 others: the 4th and 8th expire; 6 are answered."""
    shares = {"batch_error_share": 0.2, "batch_expire_share": 0.25}
    fp = FakeProvider(rules=[dict(shares, prefix="*")])

    def text(i):
        return f"question {i}"

    b = oa_submit(fp, [{"model": "gpt-x", "messages": [{"role": "user", "content": text(i)}]}
                       for i in range(10)])
    done = oa_wait(fp, b["id"])
    assert done["status"] == "expired" and done["expired_at"], done
    assert done["request_counts"] == {"total": 10, "completed": 6, "failed": 4}
    out, err = oa_file(fp, done["output_file_id"]), oa_file(fp, done["error_file_id"])
    assert len(out) == 6 and all(x["response"]["status_code"] == 200 for x in out)
    failed = [x for x in err if x["response"] is not None]
    expired = [x for x in err if x["response"] is None]
    assert len(failed) == 2 and {x["response"]["status_code"] for x in failed} == {500}
    assert failed[0]["response"]["body"]["error"]["type"] == "server_error"
    assert len(expired) == 2 and {x["error"]["code"] for x in expired} == {"batch_expired"}

    b = an_submit(fp, [{"model": "c", "max_tokens": 50, "messages": [
        {"role": "user", "content": text(i)}]} for i in range(10)])
    done = an_wait(fp, b["id"])
    assert done["request_counts"] == {"processing": 0, "succeeded": 6, "errored": 2, "canceled": 0,
                                      "expired": 2}
    kinds = [x["result"]["type"] for x in an_results(fp, done)]
    assert sorted(kinds) == ["errored"] * 2 + ["expired"] * 2 + ["succeeded"] * 6
    errored = [x for x in an_results(fp, done) if x["result"]["type"] == "errored"]
    assert errored[0]["result"]["error"]["error"]["type"] == "api_error"

    op = ge_submit(fp, [{"contents": [{"role": "user", "parts": [{"text": text(i)}]}]}
                        for i in range(10)])
    done = ge_wait(fp, op["name"])
    # Google has no per-request expiry: the expired ones have no answer at all
    assert done["metadata"]["state"] == "BATCH_STATE_EXPIRED" and done["error"]["code"] == 4
    inline = ge_inline(done)
    assert len(inline) == 8 and "response" not in done
    assert sum("error" in x for x in inline) == 2 and {x["error"]["code"] for x in inline
                                                        if "error" in x} == {13}
    assert done["metadata"]["batchStats"] == {"requestCount": "10", "successfulRequestCount": "6",
                                              "failedRequestCount": "2"}

    # the log: each request that ran, once; the expired ones never ran
    log = [e for e in fp.requests() if e["batch_id"]]
    assert len(log) == 24 and sum(e["billed"] for e in log) == 18
    assert fp.stats()["batches"]["requests"] == {"answered": 18, "errored": 6, "expired": 6,
                                                 "canceled": 0}
    assert fp.stop() == 0


def test_fake_batch_whole_batch_expiry():
    """batch_expire: the batch answers batch_stall_share of its requests and
    expires at batch_finish_ms, the rest expired, in each format's words."""
    fp = FakeProvider(rules=[{"batch_expire": True, "batch_stall_share": 0.5,
                              "batch_validating_ms": 0, "batch_finish_ms": 400}])
    n = 4
    done = oa_wait(fp, oa_submit(fp, [{"model": "gpt-x", "messages": [
        {"role": "user", "content": f"q{i}"}]} for i in range(n)])["id"])
    assert done["status"] == "expired" and done["expired_at"] and done["completed_at"] is None
    assert done["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert [x["error"]["code"] for x in oa_file(fp, done["error_file_id"])] == ["batch_expired"] * 2

    done = an_wait(fp, an_submit(fp, [{"model": "c", "max_tokens": 9, "messages": [
        {"role": "user", "content": f"q{i}"}]} for i in range(n)])["id"])
    assert done["request_counts"] == {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0,
                                      "expired": 2}

    done = ge_wait(fp, ge_submit(fp, [{"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}]}
                                      for i in range(n)])["name"])
    assert done["metadata"]["state"] == "BATCH_STATE_EXPIRED" and done["error"]["code"] == 4
    assert [x["metadata"]["key"] for x in ge_inline(done)] == ["tok-0", "tok-2"]  # even ones ran
    assert fp.stats()["batches"]["requests"]["expired"] == 6
    assert fp.stop() == 0


# ---------------------------------------------------------------- cancels

def test_fake_batch_cancel_keeps_what_ran():
    """A batch stalled after half its requests, canceled: those answered, the
    rest canceled, in each format's words."""
    fp = FakeProvider(rules=[{"batch_never_ends": True, "batch_stall_share": 0.5,
                              "batch_cancel_ms": 300}])
    n = 6
    b = oa_submit(fp, [{"model": "gpt-x", "messages": [{"role": "user", "content": f"q{i}"}]}
                       for i in range(n)])
    stalled = until(lambda: oa_get(fp, b["id"]), lambda x: x["request_counts"]["completed"] == 3)
    assert stalled["status"] == "in_progress"
    # it stays so: later polls see the same, however many
    for _ in range(5):
        assert oa_get(fp, b["id"])["request_counts"] == {"total": 6, "completed": 3, "failed": 0}
    c = ok(fp, "POST", f"{OA}/batches/{b['id']}/cancel")
    assert c["status"] == "cancelling" and c["cancelling_at"]
    done = oa_wait(fp, b["id"])
    assert done["status"] == "cancelled" and done["cancelled_at"]
    assert done["request_counts"] == {"total": 6, "completed": 3, "failed": 3}
    assert len(oa_file(fp, done["output_file_id"])) == 3
    err = oa_file(fp, done["error_file_id"])
    assert [x["error"]["code"] for x in err] == ["batch_cancelled"] * 3
    # a cancelled batch takes another cancel; a completed one does not
    assert ok(fp, "POST", f"{OA}/batches/{b['id']}/cancel")["status"] == "cancelled"
    fp.set_rules([{"batch_finish_ms": 100, "batch_validating_ms": 0, "batch_finalizing_ms": 0}])
    quick = oa_wait(fp, oa_submit(fp, [{"model": "gpt-x", "messages": [
        {"role": "user", "content": "x"}]}])["id"])
    status, _, out = req(fp, "POST", f"{OA}/batches/{quick['id']}/cancel")
    assert status == 400 and "completed" in out["error"]["message"], out

    fp.set_rules([{"batch_never_ends": True, "batch_stall_share": 0.5, "batch_cancel_ms": 300}])
    b = an_submit(fp, [{"model": "c", "max_tokens": 9, "messages": [
        {"role": "user", "content": f"q{i}"}]} for i in range(n)])
    until(lambda: an_get(fp, b["id"]), lambda x: x["request_counts"]["succeeded"] == 3)
    c = ok(fp, "POST", f"{AN}/messages/batches/{b['id']}/cancel", headers=AN_HDRS)
    assert c["processing_status"] == "canceling" and c["cancel_initiated_at"]
    done = an_wait(fp, b["id"])
    assert done["request_counts"] == {"processing": 0, "succeeded": 3, "errored": 0, "canceled": 3,
                                      "expired": 0}
    assert sorted(x["result"]["type"] for x in an_results(fp, done)) == \
        ["canceled"] * 3 + ["succeeded"] * 3

    op = ge_submit(fp, [{"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}]}
                        for i in range(n)])
    until(lambda: ge_get(fp, op["name"]),
          lambda x: x["metadata"]["batchStats"].get("successfulRequestCount") == "3")
    assert ok(fp, "POST", f"{GE}/{op['name']}:cancel", headers=GE_HDRS) == {}
    done = ge_get(fp, op["name"])  # Google cancels at once
    assert done["metadata"]["state"] == "BATCH_STATE_CANCELLED" and done["error"]["code"] == 1
    assert done["done"] is True and "response" not in done
    assert len(ge_inline(done)) == 3 and all("response" in x for x in ge_inline(done))
    st = fp.stats()["batches"]
    assert st["cancels"] == 5 and st["live"] == 0
    assert st["requests"]["canceled"] == 9 and st["calls"]["cancel"] == 5
    assert fp.stop() == 0


def test_fake_batch_never_ending_batches_wait_for_their_cancel():
    """A batch that never ends stays in progress, answering nothing, however
    long it is polled, until canceled: then every request is canceled. The
    listing shows which batches are still live (the orphan check)."""
    fp = FakeProvider(rules=[{"batch_never_ends": True, "batch_finish_ms": 100,
                              "batch_validating_ms": 0, "batch_finalizing_ms": 0,
                              "batch_cancel_ms": 0}])
    oa = oa_submit(fp, [{"model": "gpt-x", "messages": [{"role": "user", "content": "q"}]}] * 2)
    an = an_submit(fp, [{"model": "c", "max_tokens": 9, "messages": [
        {"role": "user", "content": "q"}]}] * 2)
    ge = ge_submit(fp, [{"contents": [{"role": "user", "parts": [{"text": "q"}]}]}] * 2)
    until(lambda: oa_get(fp, oa["id"]), lambda x: x["status"] == "in_progress")
    for _ in range(10):
        assert oa_get(fp, oa["id"])["status"] == "in_progress"
        assert an_get(fp, an["id"])["processing_status"] == "in_progress"
        assert ge_get(fp, ge["name"])["metadata"]["state"] == "BATCH_STATE_RUNNING"
        time.sleep(0.05)
    assert fp.stats()["batches"]["live"] == 3
    assert {e["format"] for e in listing(fp) if not e["ended"]} == {"openai", "anthropic", "gemini"}
    assert batch_log(fp, oa["id"]) == []

    ok(fp, "POST", f"{OA}/batches/{oa['id']}/cancel")
    ok(fp, "POST", f"{AN}/messages/batches/{an['id']}/cancel", headers=AN_HDRS)
    ok(fp, "POST", f"{GE}/{ge['name']}:cancel", headers=GE_HDRS)
    assert oa_wait(fp, oa["id"])["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    assert an_wait(fp, an["id"])["request_counts"]["canceled"] == 2
    done = ge_wait(fp, ge["name"])
    assert done["metadata"]["state"] == "BATCH_STATE_CANCELLED" and ge_inline(done) == []
    assert fp.stats()["batches"]["live"] == 0
    assert all(e["ended"] and e["cancels"] == 1 for e in listing(fp))

    # canceled while it validates: OpenAI's batch ends with nothing run and no file
    fp.set_rules([{"batch_validating_ms": 600000, "batch_cancel_ms": 0}])
    b = oa_submit(fp, [{"model": "gpt-x", "messages": [{"role": "user", "content": "q"}]}] * 3)
    assert ok(fp, "POST", f"{OA}/batches/{b['id']}/cancel")["status"] == "cancelled"
    done = oa_get(fp, b["id"])
    assert done["in_progress_at"] is None and done["request_counts"] == {
        "total": 0, "completed": 0, "failed": 0}
    assert done["output_file_id"] is None and done["error_file_id"] is None
    assert batch_log(fp, b["id"]) == []
    assert fp.stop() == 0


# ---------------------------------------------------------------- failures

def test_fake_batch_whole_batch_failure_and_refused_calls():
    fp = FakeProvider(rules=[{"model": "doomed*", "batch_fail": True},
                             {"prefix": "/keyed/v1", "api_key": "sk-right"}])
    one = [{"model": "doomed-1", "messages": [{"role": "user", "content": "q"}]}]
    done = oa_wait(fp, oa_submit(fp, one)["id"])
    assert done["status"] == "failed" and done["failed_at"], done
    assert done["errors"]["object"] == "list"
    assert done["errors"]["data"][0]["code"] == "batch_failed"
    assert done["output_file_id"] is None and done["error_file_id"] is None
    assert done["request_counts"]["total"] == 0

    op = ge_submit(fp, [{"contents": [{"role": "user", "parts": [{"text": "q"}]}]}], model="doomed-2")
    done = ge_wait(fp, op["name"])
    assert done["metadata"]["state"] == "BATCH_STATE_FAILED" and done["error"]["code"] == 13
    assert ge_inline(done) == []

    # Anthropic has no failed batch: every request errors
    done = an_wait(fp, an_submit(fp, [{"model": "doomed-3", "max_tokens": 9, "messages": [
        {"role": "user", "content": "q"}]}] * 3)["id"])
    assert done["request_counts"]["errored"] == 3

    # OpenAI's validation: each line's custom_id, method, url, body and model
    def line(cid, **kw):
        return dict({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                     "body": {"model": "gpt-x", "messages": []}}, **kw)
    b = oa_submit(fp, lines=[line("a"), line("a"), line("b", url="/v1/embeddings"),
                             line("c", method="GET"),
                             line("d", body={"model": "gpt-y", "messages": []}),
                             {"method": "POST"}])
    done = oa_wait(fp, b["id"])
    assert done["status"] == "failed"
    assert [(e["line"], e["code"]) for e in done["errors"]["data"]] == [
        (2, "duplicate_custom_id"), (3, "invalid_url"), (4, "invalid_value"),
        (5, "mismatched_model"), (6, "missing_required_parameter")], done["errors"]

    # refused at once: not JSONL, another purpose, bad parameters, unknown files and batches
    status, out = oa_upload(fp, raw=b'{"custom_id": "a"}\nnot json\n')
    assert status == 400 and "Line 2" in out["error"]["message"], out
    status, f = oa_upload(fp, one)
    for body, param in (({"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                          "completion_window": "1h"}, "completion_window"),
                        ({"input_file_id": f["id"], "endpoint": "/v1/embeddings",
                          "completion_window": "24h"}, "endpoint"),
                        ({"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                          "completion_window": "24h", "metadata": {"k": 1}}, "metadata"),
                        ({"endpoint": "/v1/chat/completions", "completion_window": "24h"},
                         "input_file_id")):
        status, _, out = req(fp, "POST", OA + "/batches", body)
        assert status == 400 and out["error"]["param"] == param, (param, out)
    status, _, out = req(fp, "POST", OA + "/batches", {
        "input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"})
    assert status == 404 and "file-nope" in out["error"]["message"]
    assert req(fp, "GET", OA + "/batches/batch_nope")[0] == 404
    assert req(fp, "GET", OA + "/files/file-nope/content")[0] == 404
    assert req(fp, "GET", AN + "/messages/batches/msgbatch_nope", headers=AN_HDRS)[0] == 404
    status, _, out = req(fp, "GET", GE + "/batches/nope", headers=GE_HDRS)
    assert status == 404 and out["error"]["status"] == "NOT_FOUND"
    # a batch is seen only under the prefix it was made under
    assert req(fp, "GET", f"/elsewhere/v1/batches/{b['id']}")[0] == 404

    def an_create(requests, headers=AN_HDRS):
        status, _, out = req(fp, "POST", AN + "/messages/batches", {"requests": requests}, headers)
        return status, out
    params = {"model": "c", "max_tokens": 9, "messages": [{"role": "user", "content": "q"}]}
    status, out = an_create([{"custom_id": "has space", "params": params}])
    assert status == 400 and "^[a-zA-Z0-9_-]{1,64}$" in out["error"]["message"], out
    status, out = an_create([{"custom_id": "x" * 65, "params": params}])
    assert status == 400
    status, out = an_create([{"custom_id": "same", "params": params}] * 2)
    assert status == 400 and "unique" in out["error"]["message"], out
    status, out = an_create([])
    assert status == 400 and "at least 1" in out["error"]["message"]
    assert an_create([{"custom_id": "a", "params": params}], {"x-api-key": "k"})[0] == 400
    assert an_create([{"custom_id": "a", "params": params}],
                     {"anthropic-version": "2023-06-01"})[0] == 401

    status, _, out = req(fp, "POST", GE + "/models/g:batchGenerateContent", {"batch": {
        "inputConfig": {"requests": {"requests": [{"request": {"contents": []}}]}}}}, GE_HDRS)
    assert status == 400 and "display_name" in out["error"]["message"]
    status, _, out = req(fp, "POST", GE + "/models/g:batchGenerateContent", {"batch": {
        "displayName": "x", "inputConfig": {"fileName": "files/abc"}}}, GE_HDRS)
    assert status == 400

    # keys are checked as for the sync calls of the prefix
    plain = [{"model": "gpt-x", "messages": [{"role": "user", "content": "q"}]}]
    status, _ = oa_upload(fp, plain, prefix="/keyed/v1")
    assert status == 401
    status, f = oa_upload(fp, plain, prefix="/keyed/v1",
                          headers={"Authorization": "Bearer sk-right"})
    assert status == 200, f
    assert req(fp, "GET", "/keyed/v1/batches")[0] == 401
    assert req(fp, "GET", "/keyed/v1/batches",
               headers={"Authorization": "Bearer sk-right"})[0] == 200
    assert fp.stop() == 0


# ---------------------------------------------------------------- lists

def test_fake_batch_lists_page_newest_first():
    fp = FakeProvider()
    small_oa = [{"model": "gpt-x", "messages": [{"role": "user", "content": "q"}]}]
    small_an = [{"model": "c", "max_tokens": 9, "messages": [{"role": "user", "content": "q"}]}]
    small_ge = [{"contents": [{"role": "user", "parts": [{"text": "q"}]}]}]
    oa = [oa_submit(fp, small_oa, token=f"t{i}")["id"] for i in range(5)]
    an = [an_submit(fp, small_an, token=f"t{i}")["id"] for i in range(5)]
    ge = [ge_submit(fp, small_ge, token=f"t{i}")["name"] for i in range(5)]
    oa_submit(fp, small_oa, prefix="/other/v1")  # another provider instance: not listed

    got, after = [], None
    for _ in range(5):
        page = ok(fp, "GET", f"{OA}/batches?limit=2" + (f"&after={after}" if after else ""))
        assert page["object"] == "list" and len(page["data"]) <= 2
        got += [b["id"] for b in page["data"]]
        if not page["has_more"]:
            break
        assert page["last_id"] == page["data"][-1]["id"]
        after = page["last_id"]
    assert got == oa[::-1]
    assert [m["metadata"]["promptyard_token"] for m in ok(fp, "GET", f"{OA}/batches")["data"]] == \
        [f"t{i}" for i in reversed(range(5))]
    assert req(fp, "GET", f"{OA}/batches?limit=0")[0] == 400

    got, after = [], None
    for _ in range(5):
        page = ok(fp, "GET", f"{AN}/messages/batches?limit=2" + (f"&after_id={after}" if after else ""),
                  headers=AN_HDRS)
        got += [b["id"] for b in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert got == an[::-1]
    page = ok(fp, "GET", f"{AN}/messages/batches?limit=2&before_id={an[1]}", headers=AN_HDRS)
    assert [b["id"] for b in page["data"]] == [an[3], an[2]] and page["has_more"]

    got, token = [], None
    for _ in range(5):
        page = ok(fp, "GET", f"{GE}/batches?pageSize=2" + (f"&pageToken={token}" if token else ""),
                  headers=GE_HDRS)
        got += [o["name"] for o in page["operations"]]
        assert all("output" not in o["metadata"] for o in page["operations"])
        token = page.get("nextPageToken")
        if not token:
            break
    assert got == ge[::-1]
    assert [o["metadata"]["displayName"] for o in
            ok(fp, "GET", f"{GE}/batches", headers=GE_HDRS)["operations"]] == \
        [f"promptyard-t{i}" for i in reversed(range(5))]
    assert ok(fp, "GET", "/empty/v1beta/batches?pageSize=5", headers=GE_HDRS) == {}
    assert fp.stop() == 0


# ---------------------------------------------------------------- a large file

def _rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_fake_batch_50000_requests_output_streams():
    """A 50,000-request OpenAI batch: its output file is read whole, twice, in
    1 MiB reads, and the fake's memory (sampled while it sends and after) does
    not grow by half the file's size: it writes the file from where it keeps
    it, without a copy (a copy per GET shows as +35 MiB or more)."""
    fp = FakeProvider(rules=[{"batch_validating_ms": 0, "batch_finish_ms": 1000,
                              "batch_finalizing_ms": 0}])
    n = 50000
    lines = [{"custom_id": f"big-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-x", "messages": [{"role": "user", "content": f"question {i}"}]}}
             for i in range(n)]
    b = oa_submit(fp, lines=lines, token="big")
    done = until(lambda: oa_get(fp, b["id"]), lambda x: x["status"] == "completed", timeout=400,
                 interval=0.5)
    assert done["request_counts"] == {"total": n, "completed": n, "failed": 0}
    size = ok(fp, "GET", f"{OA}/files/{done['output_file_id']}")["bytes"]
    assert size > 30 * 1024 * 1024, size

    pid = fp.proc.popen.pid
    before, peak = _rss_mib(pid), 0
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", fp.port, timeout=120)
        conn.request("GET", f"{OA}/files/{done['output_file_id']}/content")
        r = conn.getresponse()
        assert r.status == 200 and int(r.getheader("Content-Length")) == size
        ids, total, rest = set(), 0, b""
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total % (8 << 20) < len(chunk):  # every 8 MiB or so, while the file is sent
                peak = max(peak, _rss_mib(pid))
            *whole, rest = (rest + chunk).split(b"\n")
            for line in whole:
                x = json.loads(line)
                assert x["response"]["status_code"] == 200
                ids.add(x["custom_id"])
        conn.close()
        assert total == size and rest == b"" and len(ids) == n
    grown = max(peak, _rss_mib(pid)) - before
    assert grown < size / (1024 * 1024) / 2, (grown, size)
    assert fp.stats()["batches"]["result_gets"] == 2
    assert fp.stop() == 0


test_fake_batch_50000_requests_output_streams.timeout = 900


# ---------------------------------------------------------------- faults

def test_fake_batch_faults_of_the_batch_calls():
    fp = FakeProvider(rules=[
        {"endpoint": "create", "prefix": OA, "status": 500, "fail_first": 1},
        {"endpoint": "create", "prefix": AN, "drop": True, "fail_first": 1},
        {"endpoint": "get", "prefix": GE, "status": 503, "retry_after_s": 7, "fail_every": 2},
        {"endpoint": "results", "prefix": OA, "hang": True, "fail_first": 1},
        {"endpoint": "files", "prefix": "/drop/v1", "drop": True},
        {"batch_finish_ms": 200, "batch_validating_ms": 0, "batch_finalizing_ms": 0},
    ])
    one = [{"model": "gpt-x", "messages": [{"role": "user", "content": "q"}]}]
    status, f = oa_upload(fp, one)
    body = {"input_file_id": f["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    status, _, out = req(fp, "POST", OA + "/batches", body)
    assert status == 500 and out["error"]["type"] == "server_error"
    assert listing(fp) == []  # a create that failed made nothing
    b = ok(fp, "POST", OA + "/batches", body)
    # an endpoint's rule is not the API calls' rule
    assert req(fp, "POST", OA + "/chat/completions", one[0])[0] == 200

    # accepted, then the connection dropped: an orphan the caller never heard of
    params = {"model": "c", "max_tokens": 9, "messages": [{"role": "user", "content": "q"}]}
    try:
        status, _, out = req(fp, "POST", AN + "/messages/batches",
                             {"requests": [{"custom_id": "orph-0", "params": params}]}, AN_HDRS)
        raise AssertionError(f"answered {status}: {out}")
    except (http.client.RemoteDisconnected, ConnectionError):
        pass
    (orphan,) = [e for e in listing(fp) if e["format"] == "anthropic"]
    assert orphan["token"] == "orph" and orphan["requests"] == 1
    until(lambda: listing(fp), lambda es: all(e["ended"] for e in es))
    an_submit(fp, [params], token="next")

    op = ge_submit(fp, [{"contents": [{"role": "user", "parts": [{"text": "q"}]}]}])
    got = [req(fp, "GET", f"{GE}/{op['name']}", headers=GE_HDRS) for _ in range(4)]
    assert [g[0] for g in got] == [200, 503, 200, 503]
    assert got[1][1]["retry-after"] == "7" and got[1][2]["error"]["status"] == "UNAVAILABLE"

    # the output file's first GET hangs until released; the next is answered
    done = oa_wait(fp, b["id"])
    conn = http.client.HTTPConnection("127.0.0.1", fp.port, timeout=1)
    conn.request("GET", f"{OA}/files/{done['output_file_id']}/content")
    try:
        conn.getresponse()
        raise AssertionError("the hang was answered")
    except TimeoutError:
        pass
    assert fp.stats()["suspended"] == 1
    fp.release()
    conn.close()
    assert len(oa_file(fp, done["output_file_id"])) == 1

    try:
        oa_upload(fp, one, prefix="/drop/v1")
        raise AssertionError("the upload was answered")
    except (http.client.RemoteDisconnected, ConnectionError):
        pass
    st = fp.stats()["batches"]
    assert st["uploads"] == 2 and st["faults"] == 6 and st["created"]["anthropic"] == 2
    assert st["calls"]["create"] == 5 and st["calls"]["results"] == 2

    # rules that cannot mean anything are refused
    for bad in ({"endpoint": "nope"}, {"drop": True}, {"batch_error_share": 2},
                {"batch_finish_ms": -1}, {"batch_never_end": True}):
        status, _, out = req(fp, "POST", "/_control/rules", [bad])
        assert status == 400, (bad, out)
    assert fp.stop() == 0
