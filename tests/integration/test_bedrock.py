"""Amazon Bedrock (issue 18, SPEC §15): the real worker calls a Converse fake
(tests/tools/fake_bedrock.py) that verifies every request's AWS Signature V4
with botocore, Debian's python3-botocore, an implementation independent of
worker/sigv4.c. Jobs on model ids with ':' end ok at exact costs, with and
without a session token; a wrong secret is a 403 that opens the provider's
circuit; Bedrock's throttling, as a 429 or as a 400, moves jobs on as a 429
does. And the Authorization headers the data-file cases of
tests/providers/bedrock expect are recomputed here by botocore."""
import hashlib
import json
import time
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.lib import procs
from tests.lib.procs import REPO
from tests.lib.stack import Stack
from tests.tools.fake_bedrock import AUTH_RE, FakeBedrock

TIMEOUT = 300

# The data-file cases' credentials (tests/unit/test_providers.c).
CASE_AKID = "AKIDEXAMPLE"
CASE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CASE_TOKEN = "IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6+example/token+AAAA="
CASE_DATE = "20240620T120000Z"

# The integration runs' credentials: long-term, and temporary with a token.
AKID = "AKIAPROMPTYARDTEST01"
SECRET = "pY7+sEcReT/for+bedrock+TESTS/0123456789ab"
TEMP_AKID = "ASIAPROMPTYARDTEMP01"
TEMP_SECRET = "tEmP/sEcReT+for+bedrock+TESTS/9876543210"
TOKEN = ("IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6+promptyard/test/token+"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")

SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
HAIKU = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
HAIKU3 = "anthropic.claude-3-haiku-20240307-v1:0"
# USD per Mtok: input, cached input, cache write, output (AWS's on-demand prices).
PRICES = {SONNET: (3.00, 0.30, 3.75, 15.00), HAIKU: (0.80, 0.08, 1.00, 4.00),
          HAIKU3: (0.25, 0.03, 0.30, 1.25)}


# ---------------------------------------------------------------- the data files

class KnownPayload(SigV4Auth):
    """botocore's signer, given the body's SHA-256 instead of the body."""

    def __init__(self, credentials, service, region, payload_sha256):
        super().__init__(credentials, service, region)
        self.payload_sha256 = payload_sha256

    def payload(self, request):
        return self.payload_sha256


def botocore_authorization(path, headers, signed, region, token, payload_sha256):
    """The Authorization header botocore makes for a request to
    http://provider.test + path at CASE_DATE with the case credentials."""
    req = AWSRequest(method="POST", url="http://provider.test" + path, data=b"")
    lower = {k.lower(): v for k, v in headers.items()}
    for name in signed:
        if name != "host":
            req.headers[name] = lower[name].replace("<SESSION_TOKEN>", CASE_TOKEN)
    signer = KnownPayload(Credentials(CASE_AKID, CASE_SECRET, token), "bedrock", region,
                          payload_sha256)
    req.context["timestamp"] = lower["x-amz-date"]
    canonical = signer.canonical_request(req)
    signature = signer.signature(signer.string_to_sign(req, canonical), req)
    return (f"AWS4-HMAC-SHA256 Credential={CASE_AKID}/{lower['x-amz-date'][:8]}/{region}/bedrock/"
            f"aws4_request, SignedHeaders={signer.signed_headers(signer.headers_to_sign(req))}, "
            f"Signature={signature}")


def test_data_file_signatures_verify_with_botocore():
    checked = 0
    for path in sorted((REPO / "tests" / "providers" / "bedrock").glob("*/request.json")):
        rq = json.loads(path.read_text())
        auth = rq.get("headers", {}).get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256"):
            continue
        pj = path.parent / "provider.json"
        provider = json.loads(pj.read_text()) if pj.exists() else {}
        region = provider.get("region", "us-east-1")
        token = CASE_TOKEN if provider.get("aws_session_token") else None
        m = AUTH_RE.match(auth)
        assert m, (path, auth)
        signed = m.group(5).split(";")
        assert rq["headers"]["X-Amz-Date"] == CASE_DATE, path
        assert ("x-amz-security-token" in signed) == (token is not None), path
        sha = rq["body_sha256"]
        want = botocore_authorization(rq["path"], rq["headers"], signed, region, token, sha)
        assert auth == want, f"{path.parent.name}:\n  file:     {auth}\n  botocore: {want}"
        # The check can fail: another body is another signature.
        other = hashlib.sha256(bytes.fromhex(sha)).hexdigest()
        assert botocore_authorization(rq["path"], rq["headers"], signed, region, token,
                                      other) != auth
        checked += 1
    # basic, session_token, model_id_arn, model_id_plain, region_eu, query,
    # extra_headers, unicode, image_inline, pdf_inline, tool_conversation
    assert checked >= 11, checked


# ---------------------------------------------------------------- the worker

def nusd_per_mtok(usd):
    return round(usd * 1e9)


def cost_nusd(model_id, usage):
    p_in, p_cached, p_write, p_out = (nusd_per_mtok(x) for x in PRICES[model_id])
    read = usage.get("cacheReadInputTokens", 0)
    write = usage.get("cacheWriteInputTokens", 0)
    num = usage["inputTokens"] * p_in + read * p_cached + write * p_write + \
        usage["outputTokens"] * p_out
    return -(-num // 1_000_000)


def model(name, provider, model_id):
    p = PRICES[model_id]
    return {"name": name, "provider": provider, "id": model_id, "input_usd_per_mtok": p[0],
            "cached_input_usd_per_mtok": p[1], "cache_write_usd_per_mtok": p[2],
            "output_usd_per_mtok": p[3], "context_tokens": 200000, "default_max_tokens": 64,
            "quality": 0.7, "latency_ms": 500, "capabilities": ["json", "tools"]}


def provider(name, base_url, region="us-east-1"):
    return {"name": name, "type": "bedrock", "base_url": base_url, "region": region,
            "api_key_env": "", "timeout_ms": 10000, "max_connections": 16}


def bedrock_stack(fake, providers, models, **config):
    s = Stack(partitions=3, providers=providers, models=models)
    s.config["worker"].update({"metrics_listen": "", "default_strategy": "cheapest"})
    for section, values in config.items():
        s.config[section].update(values)
    s.write_config()
    procs.register(fake)
    return s


def aws_env(akid, secret, token=None, **extra):
    return {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_SESSION_TOKEN": token, **extra}


def produce(s, jobs):
    s.produce_jobs([json.dumps(j).encode() for j in jobs], keys=[j["id"].encode() for j in jobs])


def results_for(s, prefix, n, timeout_s=90):
    def got():
        rs = [r for r in s.results(timeout_s=3) if r["id"].startswith(prefix)]
        return rs if len(rs) >= n else None
    return {r["id"]: r for r in procs.wait_until(got, timeout_s, interval=0.5,
                                                 what=f"{n} results for {prefix}")}


def check_exact_costs(s, fake, results):
    """Every billed call the fake answered is one cost record at its model's
    prices, and each result's cost is its records' sum."""
    expected = sorted((r["model_id"], cost_nusd(r["model_id"], r["usage"]))
                      for r in fake.requests() if r["usage"])
    ids = {m["name"]: m["id"] for m in s.config["models"]}
    costs = s.costs(len(expected), timeout_s=30)
    assert all(c["estimated"] is False for c in costs)
    assert sorted((ids[c["model"]], c["cost_nusd"]) for c in costs) == expected
    for r in results.values():
        mine = sum(c["cost_nusd"] for c in costs if c["job_id"] == r["id"])
        assert round(r["cost_usd"] * 1e9) == mine, r
    return costs


def assert_no_secret(texts, *secrets):
    everything = "".join(texts)
    for secret in secrets:
        assert secret not in everything


def run_signed_jobs(credentials, env, n):
    fake = FakeBedrock(credentials)
    with bedrock_stack(fake, [provider("aws", fake.base)],
                       [model("sonnet", "aws", SONNET), model("haiku", "aws", HAIKU)]) as s:
        jobs = [{"id": f"job-{i}", "model": ["sonnet", "haiku"][i % 2],
                 "messages": [{"role": "system", "content": "Be terse."},
                              {"role": "user", "content": f"Résumé nº{i} — 漢字 🙂 {'x' * i}"}]}
                for i in range(n)]
        produce(s, jobs)
        w = s.worker(env=env)
        results = results_for(s, "job-", n)
        for j in jobs:
            r = results[j["id"]]
            assert r["status"] == "ok", r
            assert r["model"] == j["model"] and r["provider"] == "aws"
            assert [a["outcome"] for a in r["attempts"]] == ["ok"], r["attempts"]
        seen = fake.requests()
        assert len(seen) == n, [(q["status"], q["error_type"]) for q in seen]
        assert all(q["verified"] and q["status"] == 200 for q in seen)
        assert {q["path"] for q in seen} == {
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
            "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"}
        costs = check_exact_costs(s, fake, results)
        w.sigterm()
        assert w.wait(60) == 0
        return fake, w.log_text() + json.dumps(list(results.values())) + json.dumps(costs)


def test_signed_jobs_end_ok_with_exact_costs():
    fake, text = run_signed_jobs({AKID: (SECRET, None)}, aws_env(AKID, SECRET), 24)
    assert not any(q["token"] for q in fake.requests())
    assert_no_secret([text], SECRET)


def test_session_token_through_curl():
    fake, text = run_signed_jobs({TEMP_AKID: (TEMP_SECRET, TOKEN)},
                                 aws_env(TEMP_AKID, TEMP_SECRET, TOKEN,
                                         PROMPTYARD_HTTP_CLIENT="curl"), 12)
    assert all(q["token"] for q in fake.requests())
    assert_no_secret([text], TEMP_SECRET, TOKEN)


def test_wrong_secret_is_a_403_that_opens_the_circuit():
    fake = FakeBedrock({TEMP_AKID: (TEMP_SECRET, TOKEN)})
    with bedrock_stack(fake, [provider("aws", fake.base)], [model("sonnet", "aws", SONNET)],
                       router={"breaker_cooldown_ms": 120000}) as s:
        w = s.worker(env=aws_env(TEMP_AKID, "wrong/" + TEMP_SECRET[6:], TOKEN))
        produce(s, [{"id": f"a-{i}", "prompt": f"question {i}"} for i in range(6)])
        first = results_for(s, "a-", 6)
        calls = len(fake.requests())
        assert 1 <= calls <= 6
        for q in fake.requests():
            assert not q["verified"] and q["status"] == 403
            assert q["error_type"] == "InvalidSignatureException"
        outcomes = set()
        for r in first.values():
            # A job routed after the first 403 came back finds the circuit
            # open already (the jobs of the two partitions arrive apart).
            assert r["status"] == "error", r
            assert r["error"]["code"] == "providers_failed" or (
                r["error"]["code"] == "no_eligible_model" and not r["attempts"]), r
            outcomes |= {a["outcome"] for a in r["attempts"]}
            assert all(a["cost_usd"] == 0 for a in r["attempts"])
        assert "http_403" in outcomes and outcomes <= {"http_403", "circuit_open"}, outcomes
        # The circuit is open: later jobs find no eligible model (SPEC §6),
        # and fail without a call.
        produce(s, [{"id": f"b-{i}", "prompt": f"question {i}"} for i in range(6)])
        later = results_for(s, "b-", 6)
        for r in later.values():
            assert r["error"]["code"] == "no_eligible_model", r
            assert {a["outcome"] for a in r["attempts"]} <= {"circuit_open"}, r["attempts"]
        assert len(fake.requests()) == calls
        w.sigterm()
        assert w.wait(60) == 0
        # AWS's InvalidSignatureException quotes the canonical request, the
        # session token in it: nothing of it reaches a result or a log.
        text = (w.log_text() + json.dumps(list(first.values()) + list(later.values()))
                + json.dumps(s.dlq(12, timeout_s=30)))
        assert "Canonical String" not in text
        assert_no_secret([text], TEMP_SECRET, TOKEN, "wrong/")


def test_throttling_as_429_and_as_400_moves_jobs_on():
    fake = FakeBedrock({AKID: (SECRET, None)})
    park_ms = 10000  # worker.max_retry_after_ms: the longest a throttle parks a provider
    # Two providers, so that a throttle (which parks its whole provider for a
    # while) leaves the other one to fail over to.
    with bedrock_stack(fake, [provider("east", fake.base + "/east"),
                              provider("west", fake.base + "/west", "us-west-2")],
                       [model("cheap", "east", HAIKU3), model("dear", "west", SONNET)],
                       router={"breaker_failures": 1000},
                       worker={"max_retry_after_ms": park_ms}) as s:
        w = s.worker(env=aws_env(AKID, SECRET))
        # Every call of the cheap model is throttled, as a 400 whose body
        # says ThrottlingException, asking for an hour: retryable, never
        # provider_rejected, and a throttle: the provider is parked as for a
        # 429, for park_ms (the hour capped). (This phase comes first: no 429
        # has parked the cheap model's provider.)
        fake.throttle(HAIKU3, every=1, status=400, retry_after_s=3600)
        produce(s, [{"id": "t400-0", "prompt": "question 0"}])
        r400 = results_for(s, "t400-", 1)
        parked_at = time.monotonic()  # the throttle came before the result
        kinds = [(a["model"], a["outcome"]) for a in r400["t400-0"]["attempts"]]
        assert kinds == [("cheap", "http_400"), ("dear", "ok")], kinds
        # Jobs routed while the provider is parked go straight to the other one.
        produce(s, [{"id": f"parked-{i}", "prompt": f"question {i}"} for i in range(9)])
        parked = results_for(s, "parked-", 9)
        assert time.monotonic() - parked_at < park_ms / 1000, "too slow to see the park"
        for r in parked.values():
            assert r["status"] == "ok" and r["model"] == "dear", r
            assert [(a["model"], a["outcome"]) for a in r["attempts"]] == [("dear", "ok")], r
        assert 1 == sum(1 for q in fake.requests() if q["status"] == 400 and
                        q["error_type"] == "ThrottlingException")
        r400.update(parked)
        # The park ends at park_ms, not in an hour (the next phase needs the
        # cheap model called again): the point of this wait.
        time.sleep(max(0.0, park_ms / 1000 + 0.5 - (time.monotonic() - parked_at)))
        # Every other call of the cheap model is throttled with a 429, which
        # parks its provider for a while: jobs meet the 429 or are kept off
        # the cheap model by it, and fail over.
        fake.throttle(HAIKU3, every=2, status=429)
        before = len(fake.requests())
        produce(s, [{"id": f"t429-{i}", "prompt": f"question {i}"} for i in range(20)])
        r429 = results_for(s, "t429-", 20)
        throttled = 0
        for r in r429.values():
            assert r["status"] == "ok", r
            kinds = [(a["model"], a["outcome"]) for a in r["attempts"]]
            assert kinds in ([("cheap", "ok")], [("cheap", "http_429"), ("dear", "ok")],
                             [("cheap", "rate_limited"), ("dear", "ok")], [("dear", "ok")]), kinds
            throttled += ("cheap", "http_429") in kinds
        assert throttled >= 1
        assert throttled == sum(1 for q in fake.requests()[before:] if q["status"] == 429)
        assert all(q["verified"] for q in fake.requests())
        check_exact_costs(s, fake, {**r429, **r400})
        w.sigterm()
        assert w.wait(60) == 0
