"""Tests of the test infrastructure itself: mock cluster, fake provider, Redis,
the config writer and the Kafka helpers."""
import json
import math
import os
import socket
import subprocess
import threading
import time

import urllib.request

from confluent_kafka import Consumer, TopicPartition

from tests.lib import procs
from tests.lib.stack import (FakeProvider, MockCluster, Redis, Stack, committed_offsets,
                             config_dumps, consume_all, end_offsets, http, produce)

TIMEOUT = 120


def post(url, body, headers=None, timeout=10):
    """(status, parsed JSON or raw bytes, headers, elapsed s)."""
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), dict(e.headers)
    elapsed = time.monotonic() - t0
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw
    return status, parsed, hdrs, elapsed


def tokens(*texts):
    """The fake's input token rule: ceil(bytes / 4) + 3 per message."""
    return math.ceil(sum(len(t.encode()) for t in texts) / 4) + 3 * len(texts)


OA_KEY = {"Authorization": "Bearer sk-a"}
AN_HDRS = {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"}
GE_KEY = {"x-goog-api-key": "g-key"}
KEY_RULES = [{"prefix": "/a/v1", "api_key": "sk-a"},
             {"prefix": "/b/v1", "api_key": "sk-ant"},
             {"prefix": "/g/v1beta", "api_key": "g-key"}]


def oa_body(model="gpt-x", text="hello world", **kw):
    return {"model": model, "messages": [{"role": "system", "content": "be brief"},
                                         {"role": "user", "content": text}], **kw}


# ---------------------------------------------------------------- Kafka

def test_mockcluster_roundtrip_three_partitions():
    mc = MockCluster(topics={"infra.t": 3})
    assert mc.bootstrap.startswith("127.0.0.1:")
    values = [{"n": i} for i in range(30)]
    keys = [f"k{i}" for i in range(30)]
    delivered = produce(mc.bootstrap, "infra.t", values, keys=keys, headers={"h": "v"})
    assert {p for p, _ in delivered} == {0, 1, 2}, delivered

    msgs = consume_all(mc.bootstrap, "infra.t", 30, timeout_s=30)
    assert len(msgs) == 30
    assert sorted(m.json()["n"] for m in msgs) == list(range(30))
    assert {m.partition for m in msgs} == {0, 1, 2}
    by_key = {m.key.decode(): m.json()["n"] for m in msgs}
    assert by_key == {f"k{i}": i for i in range(30)}
    assert all(m.header("h") == b"v" for m in msgs)

    ends = end_offsets(mc.bootstrap, "infra.t")
    assert sum(ends.values()) == 30 and set(ends) == {0, 1, 2}
    assert len(consume_all(mc.bootstrap, "infra.t", None, timeout_s=30)) == 30

    assert committed_offsets(mc.bootstrap, "infra.g", "infra.t") == {0: None, 1: None, 2: None}
    c = Consumer({"bootstrap.servers": mc.bootstrap, "group.id": "infra.g",
                  "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition("infra.t", p, ends[p]) for p in ends], asynchronous=False)
    finally:
        c.close()
    assert committed_offsets(mc.bootstrap, "infra.g", "infra.t") == ends

    mc.create_topic("infra.new", 2)
    assert set(end_offsets(mc.bootstrap, "infra.new")) == {0, 1}
    assert mc.stop() == 0


def test_mockcluster_broker_down_up():
    mc = MockCluster(topics={"infra.d": 1}, brokers=1)
    produce(mc.bootstrap, "infra.d", ["before"])
    mc.down(1)
    failed = False
    try:
        produce(mc.bootstrap, "infra.d", ["while down"], timeout_s=3)
    except AssertionError:
        failed = True
    assert failed, "produce succeeded while the only broker was down"
    mc.up(1)
    produce(mc.bootstrap, "infra.d", ["after"], timeout_s=30)
    texts = [m.text for m in consume_all(mc.bootstrap, "infra.d", 2, timeout_s=30)]
    assert texts == ["before", "after"], texts
    try:
        mc.down(7)
    except RuntimeError as e:
        assert "error" in str(e)
    else:
        raise AssertionError("down 7 on a 1-broker cluster did not fail")
    mc.down_all()
    mc.up_all()
    assert mc.stop() == 0


# ---------------------------------------------------------------- fake provider

def test_fake_provider_openai_shape_and_usage():
    fp = FakeProvider(rules=KEY_RULES)
    st, body, hdrs, _ = post(fp.url("/a/v1/chat/completions"), oa_body(max_tokens=100), OA_KEY)
    assert st == 200, body
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["model"] == "gpt-x"
    ch = body["choices"][0]
    assert ch["index"] == 0 and ch["finish_reason"] == "stop"
    assert ch["message"]["role"] == "assistant" and ch["message"]["refusal"] is None
    assert "gpt-x" in ch["message"]["content"]
    u = body["usage"]
    assert u["prompt_tokens"] == tokens("be brief", "hello world")
    assert u["completion_tokens"] == 16
    assert u["total_tokens"] == u["prompt_tokens"] + 16
    assert u["prompt_tokens_details"]["cached_tokens"] == 0

    # max_completion_tokens below the wanted output: cut, finish_reason length
    st, body, _, _ = post(fp.url("/a/v1/chat/completions"),
                          oa_body(max_completion_tokens=5), OA_KEY)
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["finish_reason"] == "length"

    # json mode: the content is a JSON object (OpenAI wants "json" in a message)
    st, body, _, _ = post(fp.url("/a/v1/chat/completions"),
                          oa_body(text="answer in JSON", response_format={"type": "json_object"}),
                          OA_KEY)
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)
    st, body, _, _ = post(fp.url("/a/v1/chat/completions"),
                          oa_body(response_format={"type": "json_object"}), OA_KEY)
    assert st == 400 and "must contain the word 'json'" in body["error"]["message"]

    # configured usage
    fp.set_rules([{"prefix": "/a/v1", "model": "big", "input_tokens": 1000, "output_tokens": 50,
                   "cached_tokens": 400}] + KEY_RULES)
    st, body, _, _ = post(fp.url("/a/v1/chat/completions"), oa_body(model="big"), OA_KEY)
    assert body["usage"]["prompt_tokens"] == 1000 and body["usage"]["completion_tokens"] == 50
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 400

    # a bad request
    st, body, _, _ = post(fp.url("/a/v1/chat/completions"), {"model": "gpt-x"}, OA_KEY)
    assert st == 400 and body["error"]["type"] == "invalid_request_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_fake_provider_anthropic_shape_and_usage():
    fp = FakeProvider(rules=[{"prefix": "/b/v1", "model": "cached", "cached_tokens": 5}] + KEY_RULES)
    req = {"model": "claude-x", "max_tokens": 300, "system": "sys prompt",
           "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]},
                        {"role": "assistant", "content": "hi"},
                        {"role": "user", "content": "more"}]}
    st, body, hdrs, _ = post(fp.url("/b/v1/messages"), req, AN_HDRS)
    assert st == 200, body
    assert body["id"].startswith("msg_") and body["type"] == "message"
    assert body["role"] == "assistant" and body["model"] == "claude-x"
    assert body["content"][0]["type"] == "text" and "claude-x" in body["content"][0]["text"]
    assert body["stop_reason"] == "end_turn"
    u = body["usage"]
    assert u["input_tokens"] == tokens("sys prompt", "hello", "hi", "more")
    assert u["output_tokens"] == 16
    assert u["cache_read_input_tokens"] == 0 and u["cache_creation_input_tokens"] == 0

    # cached tokens are outside input_tokens on the wire, inside in the log
    st, body, _, _ = post(fp.url("/b/v1/messages"), dict(req, model="cached"), AN_HDRS)
    assert body["usage"]["cache_read_input_tokens"] == 5
    assert body["usage"]["input_tokens"] == tokens("sys prompt", "hello", "hi", "more") - 5
    last = fp.requests()[-1]
    assert last["input_tokens"] == tokens("sys prompt", "hello", "hi", "more")
    assert last["cached_tokens"] == 5

    st, body, _, _ = post(fp.url("/b/v1/messages"), dict(req, max_tokens=3), AN_HDRS)
    assert body["stop_reason"] == "max_tokens" and body["usage"]["output_tokens"] == 3

    st, body, _, _ = post(fp.url("/b/v1/messages"), req, {"x-api-key": "sk-ant"})
    assert st == 400 and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in body["error"]["message"]

    no_max = {k: v for k, v in req.items() if k != "max_tokens"}
    st, body, _, _ = post(fp.url("/b/v1/messages"), no_max, AN_HDRS)
    assert st == 400 and "max_tokens" in body["error"]["message"]


def test_fake_provider_gemini_shape_and_usage():
    fp = FakeProvider(rules=KEY_RULES)
    req = {"systemInstruction": {"parts": [{"text": "sys"}]},
           "contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}],
           "generationConfig": {"maxOutputTokens": 200, "temperature": 0.2}}
    st, body, _, _ = post(fp.url("/g/v1beta/models/gemini-1.5-flash:generateContent"), req, GE_KEY)
    assert st == 200, body
    cand = body["candidates"][0]
    assert cand["content"]["role"] == "model" and cand["finishReason"] == "STOP"
    assert "gemini-1.5-flash" in cand["content"]["parts"][0]["text"]
    um = body["usageMetadata"]
    assert um["promptTokenCount"] == tokens("sys", "hello gemini")
    assert um["candidatesTokenCount"] == 16
    assert um["totalTokenCount"] == um["promptTokenCount"] + 16
    assert um["cachedContentTokenCount"] == 0
    assert body["modelVersion"] == "gemini-1.5-flash"

    req["generationConfig"] = {"maxOutputTokens": 4, "responseMimeType": "application/json"}
    st, body, _, _ = post(fp.url("/g/v1beta/models/gemini-1.5-flash:generateContent"), req,
                          GE_KEY)
    assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert isinstance(json.loads(body["candidates"][0]["content"]["parts"][0]["text"]), dict)

    bad = {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}
    st, body, _, _ = post(fp.url("/g/v1beta/models/m:generateContent"), bad, GE_KEY)
    assert st == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["code"] == 400


def test_fake_provider_wrong_key_is_401_in_each_format():
    fp = FakeProvider(rules=KEY_RULES)
    st, body, _, _ = post(fp.url("/a/v1/chat/completions"), oa_body(),
                          {"Authorization": "Bearer wrong"})
    assert st == 401 and body["error"]["code"] == "invalid_api_key"
    assert "wrong" not in json.dumps(body)
    st, body, _, _ = post(fp.url("/a/v1/chat/completions"), oa_body())
    assert st == 401
    st, body, _, _ = post(fp.url("/b/v1/messages"),
                          {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                          {"x-api-key": "nope", "anthropic-version": "2023-06-01"})
    assert st == 401 and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    st, body, _, _ = post(fp.url("/g/v1beta/models/m:generateContent"),
                          {"contents": [{"parts": [{"text": "x"}]}]}, {"x-goog-api-key": "nope"})
    assert st == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    # Gemini's ?key= form is accepted too
    st, body, _, _ = post(fp.url("/g/v1beta/models/m:generateContent?key=g-key"),
                          {"contents": [{"parts": [{"text": "x"}]}]})
    assert st == 200
    assert fp.stats()["by_status"]["401"] == 4


def test_fake_provider_latency():
    fp = FakeProvider(rules=[{"model": "slow", "latency_ms": 400}, {"model": "jit", "latency_ms": 100,
                                                                     "jitter_ms": 50}])
    st, _, _, elapsed = post(fp.url("/x/chat/completions"), oa_body(model="slow"))
    assert st == 200 and elapsed >= 0.4, elapsed
    st, _, _, elapsed = post(fp.url("/x/chat/completions"), oa_body(model="jit"))
    assert st == 200 and elapsed >= 0.1, elapsed
    log = fp.requests()
    assert log[0]["latency_ms"] == 400 and 100 <= log[1]["latency_ms"] <= 150


def test_fake_provider_fail_first_and_retry_after():
    fp = FakeProvider(rules=[{"model": "flaky", "status": 429, "retry_after_s": 3, "fail_first": 2}])
    for _ in range(2):
        st, body, hdrs, _ = post(fp.url("/x/chat/completions"), oa_body(model="flaky"))
        assert st == 429 and body["error"]["code"] == "rate_limit_exceeded"
        assert hdrs.get("Retry-After") == "3"
    st, body, hdrs, _ = post(fp.url("/x/chat/completions"), oa_body(model="flaky"))
    assert st == 200 and "Retry-After" not in hdrs

    fp.set_rules([{"model": "*", "status": 529, "fail_every": 3},
                  {"model": "never-reached", "status": 500}])
    statuses = [post(fp.url("/b/messages"), {"model": "c", "max_tokens": 5,
                                             "messages": [{"role": "user", "content": "x"}]},
                     {"x-api-key": "any", "anthropic-version": "2023-06-01"})[0]
                for _ in range(6)]
    assert statuses == [200, 200, 529, 200, 200, 529], statuses

    fp.set_rules([{"model": "*", "status": 503}])
    st, body, _, _ = post(fp.url("/g/models/m:generateContent"), {"contents": [{"parts": [{"text": "x"}]}]})
    assert st == 503 and body["error"]["status"] == "UNAVAILABLE"


def test_fake_provider_context_overflow_malformed_and_hang():
    fp = FakeProvider(rules=[{"model": "ovf", "error_type": "context_overflow", "max_context": 1000},
                             {"model": "trunc", "status": 200, "body": "{\"id\": \"chatcmpl-",
                              "fail_first": 1},
                             {"model": "html", "status": 502, "body": "<html>bad gateway</html>",
                              "content_type": "text/html"},
                             {"model": "hang", "hang": True}])
    st, body, _, _ = post(fp.url("/x/chat/completions"), oa_body(model="ovf"))
    assert st == 400 and body["error"]["code"] == "context_length_exceeded"
    st, body, _, _ = post(fp.url("/x/messages"),
                          {"model": "ovf", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                          {"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert st == 400 and body["error"]["message"].startswith("prompt is too long: ")
    assert "> 1000 maximum" in body["error"]["message"]
    st, body, _, _ = post(fp.url("/x/models/ovf:generateContent"), {"contents": [{"parts": [{"text": "x"}]}]})
    assert st == 400 and "exceeds the maximum number of tokens allowed (1000)" in body["error"]["message"]

    st, body, _, _ = post(fp.url("/x/chat/completions"), oa_body(model="trunc"))
    assert st == 200 and body == b'{"id": "chatcmpl-'
    st, body, _, _ = post(fp.url("/x/chat/completions"), oa_body(model="trunc"))
    assert st == 200 and body["object"] == "chat.completion"
    st, body, hdrs, _ = post(fp.url("/x/chat/completions"), oa_body(model="html"))
    assert st == 502 and body == b"<html>bad gateway</html>" and hdrs["Content-Type"] == "text/html"

    t0 = time.monotonic()
    try:
        post(fp.url("/x/chat/completions"), oa_body(model="hang"), timeout=0.5)
    except OSError:  # socket timeout
        pass
    else:
        raise AssertionError("a hanging request was answered")
    assert time.monotonic() - t0 >= 0.5
    # The client gave up and closed its connection: the fake lets the hang go.
    procs.wait_until(lambda: fp.stats()["suspended"] == 0, 10, what="hang dropped with its client")

    # /_control/release closes a hang whose client still waits, unanswered.
    outcome = {}

    def wait_for_answer():
        try:
            outcome["answer"] = post(fp.url("/x/chat/completions"), oa_body(model="hang"), timeout=60)
        except OSError as e:
            outcome["error"] = e

    waiter = threading.Thread(target=wait_for_answer)
    waiter.start()
    try:
        procs.wait_until(lambda: fp.stats()["suspended"] == 1, 10, what="second hang held")
    finally:
        fp.release()
        waiter.join(30)
    assert not waiter.is_alive() and "answer" not in outcome, outcome
    assert isinstance(outcome["error"], ConnectionError), outcome  # closed, not timed out
    assert fp.stats()["suspended"] == 0
    billed = [r for r in fp.requests() if r["billed"]]
    assert [r["model"] for r in billed] == ["trunc"]


def test_fake_provider_records_requests():
    fp = FakeProvider(rules=[{"prefix": "/a/v1", "api_key": "sk-a"}], log_bodies=True)
    post(fp.url("/a/v1/chat/completions"), oa_body(max_tokens=7), OA_KEY)
    post(fp.url("/b/v1/messages"), {"model": "c", "max_tokens": 9,
                                    "messages": [{"role": "user", "content": "x"}]},
         {"x-api-key": "secret-ant", "anthropic-version": "2023-06-01"})
    post(fp.url("/a/v1/chat/completions"), oa_body(), {"Authorization": "Bearer bad"})
    log = fp.requests()
    assert [r["seq"] for r in log] == [1, 2, 3]
    first = log[0]
    for field in ("seq", "prefix", "format", "model", "status", "input_tokens", "output_tokens",
                  "cached_tokens", "latency_ms", "max_tokens"):
        assert field in first, field
    assert (first["prefix"], first["format"], first["model"], first["status"]) == \
        ("/a/v1", "openai", "gpt-x", 200)
    assert first["input_tokens"] == tokens("be brief", "hello world")
    assert first["output_tokens"] == 7 and first["max_tokens"] == 7 and first["billed"]
    assert (log[1]["format"], log[1]["prefix"], log[1]["max_tokens"]) == ("anthropic", "/b/v1", 9)
    assert log[2]["status"] == 401 and not log[2]["billed"] and log[2]["input_tokens"] == 0

    with_bodies = fp.requests(bodies=True, since=1)
    assert [r["seq"] for r in with_bodies] == [2, 3]
    assert with_bodies[0]["body"]["max_tokens"] == 9
    assert with_bodies[0]["headers"]["x-api-key"] == "[redacted]"
    assert with_bodies[1]["headers"]["authorization"] == "[redacted]"
    assert "secret-ant" not in json.dumps(with_bodies) and "Bearer bad" not in json.dumps(with_bodies)

    stats = fp.stats()
    assert stats["requests"] == 3
    assert stats["by_model"] == {"gpt-x": 2, "c": 1}
    assert stats["by_prefix"] == {"/a/v1": 2, "/b/v1": 1}
    assert stats["by_status"] == {"200": 2, "401": 1}
    fp.reset()
    assert fp.requests() == [] and fp.stats()["requests"] == 0
    st, _ = http("POST", fp.url("/_control/rules"), [{"modle": "typo"}])
    assert st == 400
    assert fp.stop() == 0


def _raw_exchange(port, data, want_responses, timeout=10):
    """Sends raw bytes, reads until want_responses whole responses (or EOF)
    have come; returns [(status, headers, body)]."""
    out, buf = [], b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for part in data if isinstance(data, list) else [data]:
            sock.sendall(part)
            time.sleep(0.05)
        while len(out) < want_responses:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                lines = buf[:head_end].decode().split("\r\n")
                hdrs = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
                n = int(hdrs.get("content-length", "0"))
                if len(buf) >= head_end + 4 + n:
                    out.append((int(lines[0].split()[1]), hdrs, buf[head_end + 4:head_end + 4 + n]))
                    buf = buf[head_end + 4 + n:]
                    continue
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return out


def test_fake_provider_speaks_http11():
    """The fake's own HTTP/1.1 server: pipelined requests are answered in
    order on one connection, a body in pieces waits for its Content-Length,
    Expect: 100-continue is honoured, and what it does not read (chunked
    bodies, a broken head) is refused with the connection closed."""
    fp = FakeProvider()

    def request(model, extra=b""):
        b = json.dumps(oa_body(model=model)).encode()
        return (b"POST /p/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + extra + b"Content-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)

    got = _raw_exchange(fp.port, request("one") + request("two") + b"GET /_stats HTTP/1.1\r\n\r\n", 3)
    assert [g[0] for g in got] == [200, 200, 200], got
    assert [json.loads(g[2])["model"] for g in got[:2]] == ["one", "two"]
    assert json.loads(got[2][2])["requests"] == 2

    whole = request("split")
    got = _raw_exchange(fp.port, [whole[:40], whole[40:-10], whole[-10:]], 1)
    assert got[0][0] == 200 and json.loads(got[0][2])["model"] == "split"

    req = request("cont", b"Expect: 100-continue\r\n")
    head, rest = req.split(b"\r\n\r\n", 1)
    got = _raw_exchange(fp.port, [head + b"\r\n\r\n", rest], 2)
    assert [g[0] for g in got] == [100, 200], got

    got = _raw_exchange(fp.port, b"POST /p/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n0\r\n\r\n", 2)
    assert [g[0] for g in got] == [501] and got[0][1]["connection"] == "close", got
    got = _raw_exchange(fp.port, b"NONSENSE\r\n\r\n", 2)
    assert [g[0] for g in got] == [400], got
    got = _raw_exchange(fp.port, b"GET /_stats HTTP/1.1\r\nX-Pad: " + b"a" * 70000, 2)
    assert [g[0] for g in got] == [431], got
    # A body over 16 MiB is answered (the format's 413) without being read,
    # and the connection ends there.
    got = _raw_exchange(fp.port, b"POST /p/chat/completions HTTP/1.1\r\nContent-Length: 20000000\r\n"
                        b"\r\n{", 2)
    assert [g[0] for g in got] == [413] and got[0][1]["connection"] == "close", got
    assert "too large" in json.loads(got[0][2])["error"]["message"], got
    assert fp.stats()["requests"] == 5  # one, two, split, cont, the 413
    assert fp.stop() == 0


def test_http_floor_sends_the_job_through_the_http_layer():
    """bin/http_floor (make bench b's HTTP-layer figure) sends the decoded job,
    built by the model's adapter, as many times as asked, and reports every
    call: over plain HTTP, and over TLS (the provider's ca_file) with HTTP/2
    or, with --http 1.1, HTTP/1.1 on a server that offers both; a wrong key
    shows up as failures and a non-zero exit, not as a figure. (Its CPU
    figure is make bench's: a test cannot judge it.)"""
    with Stack(partitions=1, tls="h2") as s:
        for tls, http in ((None, "1.1"), ("h2", "2"), ("h2", "1.1")):
            http_floor_run(s, tls, http)


def http_floor_run(s, tls, http):
    CALLS = 300
    s.providers[0].update({"base_url": s.provider_url("/openai/v1", tls), "max_connections": 8})
    s.set_fake_rules([{"prefix": "/openai/v1", "api_key": "sk-floor"}])
    s.write_config()
    s.fake.reset()
    before = len(s.tls.requests())
    job = json.dumps({"id": "floor", "prompt": "Say hello in one short sentence."})
    argv = [procs.bin_path("http_floor"), "--config", str(s.config_path), "--model",
            "gpt-4o-mini", "--job", job, "--calls", str(CALLS), "--in-flight", "50",
            "--http", http]
    p = subprocess.run(argv, env=procs.child_env({**s.env, "FAKE_OPENAI_KEY": "sk-floor"}),
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, (tls, http, p.stdout, p.stderr[-2000:])
    r = json.loads(p.stdout)
    assert r["calls"] == CALLS and r["failures"] == 0, r
    assert r["user_us_per_call"] >= 0 and r["sys_us_per_call"] >= 0, r
    log = s.fake.requests()
    assert len(log) == CALLS and {e["model"] for e in log} == {"gpt-4o-mini"}
    assert {e["status"] for e in log} == {200}
    assert s.fake.stats()["suspended"] == 0
    served = s.tls.requests()[before:]
    if tls is None:
        assert served == []
    else:
        assert len(served) == CALLS
        want = "HTTP/2.0" if http == "2" else "HTTP/1.1"
        assert {q.protocol for q in served} == {want}, (http, {q.protocol for q in served})
        assert len({q.connection for q in served}) <= 8

    s.fake.reset()
    p = subprocess.run(argv, env=procs.child_env({**s.env, "FAKE_OPENAI_KEY": "sk-wrong"}),
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 1 and "sk-wrong" not in p.stdout + p.stderr, (p.stdout, p.stderr)
    r = json.loads(p.stdout)
    assert r["calls"] == CALLS and r["failures"] == CALLS and r["failed_status"] == CALLS, r
    assert r["last_status"] == 401, r


# ---------------------------------------------------------------- Redis

def test_redis_start_restart_stop(tmpdir):
    r = Redis(tmpdir=tmpdir, appendonly=True)
    port, data_dir = r.port, r.dir
    c = r.client()
    assert c.ping()
    c.set("k", "v")
    assert c.get("k") == b"v"
    assert r.client(decode_responses=True).get("k") == "v"
    r.restart()
    assert r.port == port
    assert r.client().get("k") == b"v"    # appendonly + fsync always: kept
    r.kill()
    assert not r.running()
    r.start()
    assert r.port == port and r.client().get("k") == b"v"
    r.stop()
    assert not os.path.exists(data_dir)

    plain = Redis(tmpdir=tmpdir)
    assert plain.client().ping()
    plain.restart()
    assert plain.client().get("k") is None
    plain.stop()
    assert not os.path.exists(plain.dir)


# ---------------------------------------------------------------- config writer

def test_write_config_syntax():
    text = config_dumps({
        "kafka": {"brokers": "127.0.0.1:1", "input_topics": ["a", "b"], "properties": []},
        "router": {"balanced_slack": 0.1, "window_s": 300, "big": 2**40, "tiny": 1e-05,
                   "whole": 100.0},
        "providers": [{"name": "o", "timeout_ms": 5, "ok": True}],
        "budgets": [{"name": "d\"q", "limit_usd": 5.0, "parent": None}],
    })
    assert 'kafka: {' in text and 'input_topics = ["a", "b"];' in text
    assert "properties = ();" in text
    assert "balanced_slack = 0.1;" in text and "window_s = 300;" in text
    assert "big = 1099511627776L;" in text and "tiny = 1.0e-05;" in text and "whole = 100.0;" in text
    assert "providers = (" in text and "ok = true;" in text
    assert 'name = "d\\"q";' in text and "parent" not in text
