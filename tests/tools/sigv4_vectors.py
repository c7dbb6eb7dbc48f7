#!/usr/bin/python3
"""AWS Signature V4 test vectors computed by botocore, for tests/unit/test_sigv4.c.

    /usr/bin/python3 tests/tools/sigv4_vectors.py > vectors.jsonl

Writes one JSON object per line: a request (method, URL as sent, headers to
sign, body, region, service, credentials, time) and what botocore's SigV4Auth
(Debian's python3-botocore, the independent implementation) makes of it: the
header lines it adds, in sigv4_sign's order, and its canonical request (for
the diagnosis of a mismatch). The C test signs the same inputs with
worker/sigv4.c and compares. Nothing here is copied from the C signer: every
expected value is botocore's, computed now.

URLs are built the way botocore's REST serializer builds them: a model id is
one path label, percent_encode(id) (':' -> %3A, '/' -> %2F), so "model_id"
cases also check sigv4_buf_path_segment against botocore. The exception is a
segment of dots only, which sigv4 writes as %2E (botocore would write it as
dots, which clients remove as a dot segment).

A query that is already strictly encoded is handed to botocore in the URL
(botocore then signs it as sent, as a server would); a loosely encoded one is
handed over as decoded parameters (botocore encodes and sorts them, which is
the canonical form AWS defines).
"""
import datetime
import hashlib
import json
import sys
import types

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
# Shaped like an STS session token: long, base64 with '+', '/' and '='.
TOKEN = ("IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6+example/token+"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
BEDROCK = "https://bedrock-runtime.us-east-1.amazonaws.com"
JSON_CT = "Content-Type: application/json"


def utc(y, mo, d, h=0, mi=0, s=0):
    return int(datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc).timestamp())


TIMES = [utc(2015, 8, 30, 12, 36), utc(2024, 6, 20, 9, 5, 7), utc(2000, 2, 29, 23, 59, 59),
         utc(2038, 1, 19, 3, 14, 8), 0, utc(2099, 12, 31, 23, 59, 59), utc(2025, 1, 1)]
REGIONS = ["us-east-1", "us-west-2", "eu-central-1", "ap-northeast-1", "eu-west-3",
           "ca-central-1", "us-gov-west-1", "ap-southeast-2"]

MODEL_IDS = [
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-3-opus-20240229-v1:0",
    "meta.llama3-70b-instruct-v1:0",
    "mistral.mistral-large-2402-v1:0",
    "cohere.command-r-plus-v1:0",
    "amazon.titan-text-express-v1",
    "amazon.nova-pro-v1:0",
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "eu.meta.llama3-2-3b-instruct-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-v2:1",
    "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123xyz",
    "a+b+c",
    "model with spaces",
    "ünïcødé-模型",
    "100%-pure%20already%3Aencoded",
    "tilde~under_score.dot-dash",
    "semi;colon=eq&amp?query#hash",
    "emoji-🙂-id",
    "quote\"back\\slash'tick`",
    "brackets[]{}()<>|^",
    "star*bang!at@dollar$comma,",
    "..",
    ".",
    "...",
]

BODIES = [
    b'{"messages":[{"role":"user","content":[{"text":"Hello"}]}]}',
    b"",
    '{"messages":[{"role":"user","content":[{"text":"Résumé nº1 — 漢字 🙂"}]}],"inferenceConfig":{"maxTokens":64}}'.encode(),
    bytes(range(256)),  # every byte, NUL included
    b'{"system":[{"text":"' + b"x" * (1 << 20) + b'"}]}',  # over 1 MiB
]


def fixed_utcnow(t):
    """Makes botocore's SigV4Auth see t (unix seconds) as the current time."""
    fixed = datetime.datetime.fromtimestamp(t, datetime.timezone.utc).replace(tzinfo=None)

    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return fixed

    botocore.auth.datetime = types.SimpleNamespace(datetime=Fixed)


def segment(model_id):
    if model_id and set(model_id) == {"."}:
        return "%2E" * len(model_id)
    return percent_encode(model_id)


def botocore_sign(case):
    """Signs case with botocore; returns (lines, canonical request)."""
    fixed_utcnow(case["time_s"])
    url = case["url"]
    params = case.pop("params", None)
    body = bytes.fromhex(case["body_hex"])
    req = AWSRequest(method=case["method"], url=url, data=body, params=params or {})
    for line in case["headers"]:
        name, _, value = line.partition(":")
        req.headers[name] = value
    if case["content_sha256"]:
        # What S3SigV4Auth does; the non-S3 signer then signs this header and
        # takes it as the payload hash.
        req.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    creds = Credentials(case["access_key_id"], case["secret"], case["token"] or None)
    signer = botocore.auth.SigV4Auth(creds, case["service"], case["region"])
    signer.add_auth(req)
    lines = [f"X-Amz-Date: {req.headers['X-Amz-Date']}"]
    if case["token"]:
        lines.append(f"X-Amz-Security-Token: {req.headers['X-Amz-Security-Token']}")
    if case["content_sha256"]:
        lines.append(f"X-Amz-Content-SHA256: {req.headers['X-Amz-Content-SHA256']}")
    lines.append(f"Authorization: {req.headers['Authorization']}")
    del req.headers["Authorization"]  # the canonical request is of the request before it
    return lines, signer.canonical_request(req)


def case(name, url, *, method="POST", headers=(JSON_CT,), body=BODIES[0], region="us-east-1",
         service="bedrock", token="", time_s=TIMES[0], content_sha256=False, model_id=None,
         params=None, access_key_id=AKID, secret=SECRET):
    c = {"name": name, "method": method, "url": url, "headers": list(headers),
         "body_hex": body.hex(), "region": region, "service": service,
         "access_key_id": access_key_id, "secret": secret, "token": token, "time_s": time_s,
         "content_sha256": content_sha256}
    if model_id is not None:
        c["model_id"] = model_id
    if params is not None:
        c["params"] = params
    return c


def query_case(name, query, pairs, **kw):
    """A query as sent; pairs, its decoded (name, value)s. A strictly encoded
    query goes to botocore in the URL, any other as parameters."""
    strict = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
    base = f"{BEDROCK}/model/{segment(MODEL_IDS[0])}/converse"
    if query == strict:
        c = case(name, f"{base}?{query}", **kw)
        c["url_for_botocore"] = c["url"]
        return c
    c = case(name, f"{base}?{query}", params=pairs, **kw)
    c["url_for_botocore"] = base
    return c


def cases():
    out = []
    # Every model id, each with other settings, round robin.
    for i, mid in enumerate(MODEL_IDS):
        out.append(case(f"model_{i}", f"{BEDROCK}/model/{segment(mid)}/converse", model_id=mid,
                        region=REGIONS[i % len(REGIONS)], time_s=TIMES[i % len(TIMES)],
                        token=TOKEN if i % 3 == 1 else "", body=BODIES[i % 4]))
        out.append(case(f"model_{i}_stream", f"{BEDROCK}/model/{segment(mid)}/converse-stream",
                        model_id=mid, token=TOKEN if i % 2 else "", content_sha256=i % 4 == 0,
                        time_s=TIMES[(i + 3) % len(TIMES)]))
    # Bodies.
    for i, body in enumerate(BODIES):
        out.append(case(f"body_{i}", f"{BEDROCK}/model/{segment(MODEL_IDS[0])}/converse",
                        body=body, token=TOKEN if i % 2 else "", content_sha256=i == 4))
    # Regions and dates, with and without a session token.
    for i, region in enumerate(REGIONS):
        for j, t in enumerate(TIMES[:3]):
            host = f"https://bedrock-runtime.{region}.amazonaws.com"
            out.append(case(f"region_{region}_{j}", f"{host}/model/{segment(MODEL_IDS[1])}/converse",
                            region=region, time_s=t, token=TOKEN if (i + j) % 2 else ""))
    # Queries: unsorted, repeated, valueless, needing encoding, loosely encoded.
    q = [
        ("q_sorted", "api-version=2024-01-01", [("api-version", "2024-01-01")]),
        ("q_unsorted", "b=2&a=1&c=3", [("b", "2"), ("a", "1"), ("c", "3")]),
        ("q_repeated", "a=2&a=1&a=10&a=", [("a", "2"), ("a", "1"), ("a", "10"), ("a", "")]),
        ("q_valueless", "flag&a=1", [("flag", ""), ("a", "1")]),
        ("q_upper_before_lower", "b=1&B=2&a=3&A=4", [("b", "1"), ("B", "2"), ("a", "3"), ("A", "4")]),
        ("q_prefix_keys", "a-b=1&a=2&a.b=3&a_b=4&a~b=5",
         [("a-b", "1"), ("a", "2"), ("a.b", "3"), ("a_b", "4"), ("a~b", "5")]),
        ("q_strict_encoded", "q=a%3Ab%2Fc%20d", [("q", "a:b/c d")]),
        ("q_loose_colon_slash", "q=a:b/c", [("q", "a:b/c")]),
        ("q_lower_hex", "q=%3a%2f%e6%bc%a2", [("q", ":/漢")]),
        ("q_needless_escape", "q=%7E%41%2D", [("q", "~A-")]),
        ("q_plus_is_plus", "q=a+b", [("q", "a+b")]),
        ("q_equals_in_value", "a=b=c", [("a", "b=c")]),
        ("q_encoded_key", "k%20y=v&k%3Dz=w", [("k y", "v"), ("k=z", "w")]),
        ("q_unicode", "name=%E6%BC%A2%E5%AD%97&emoji=%F0%9F%99%82", [("name", "漢字"), ("emoji", "🙂")]),
        ("q_reserved_chars", "x=!$'()*,;:@", [("x", "!$'()*,;:@")]),
        ("q_percent", "p=100%25", [("p", "100%")]),
        ("q_sort_by_value", "k=b&k=B&k=a&k=%41", [("k", "b"), ("k", "B"), ("k", "a"), ("k", "A")]),
    ]
    for i, (name, query, pairs) in enumerate(q):
        out.append(query_case(name, query, pairs, token=TOKEN if i % 2 else "",
                              time_s=TIMES[i % len(TIMES)]))
    # Headers: trimming, inner runs of spaces, repeated names, case, the blacklist.
    h = [
        ("h_trim", ["Content-Type:   application/json   "]),
        ("h_collapse", ["Content-Type: application/json;  charset=utf-8", "X-Custom: a   b \t c"]),
        ("h_tabs", ["X-Tab:\tx\t\ty\t"]),
        ("h_repeated", ["X-Dup: 1", "x-dup: 2", "X-DUP:  3  ", JSON_CT]),
        ("h_empty_value", ["X-Empty:", JSON_CT]),
        ("h_case", ["CONTENT-TYPE: Application/JSON", "Accept: application/json"]),
        ("h_blacklist", [JSON_CT, "User-Agent: promptyard/1", "Expect: 100-continue",
                         "X-Amzn-Trace-Id: Root=1-abc"]),
        ("h_host_given", [JSON_CT, "Host: bedrock-runtime.us-east-1.amazonaws.com"]),
        ("h_many", [JSON_CT, "Accept: */*", "X-Z: z", "X-A: a", "anthropic-beta: tools-2024",
                    "X-Amzn-Bedrock-GuardrailIdentifier: gr-1", "x-amzn-bedrock-trace: ENABLED"]),
        ("h_none", []),
    ]
    for i, (name, headers) in enumerate(h):
        out.append(case(name, f"{BEDROCK}/model/{segment(MODEL_IDS[i % 5])}/converse",
                        headers=headers, token=TOKEN if i % 2 else "", content_sha256=i % 3 == 0))
    # URLs: ports, case, IPv6, prefixes, paths botocore normalises.
    u = [
        ("u_default_https_port", "https://bedrock-runtime.us-east-1.amazonaws.com:443/model/x/converse"),
        ("u_default_http_port", "http://127.0.0.1:80/model/x/converse"),
        ("u_other_port", "http://127.0.0.1:8080/model/x%3A0/converse"),
        ("u_https_on_80", "https://localhost:80/model/x/converse"),
        ("u_upper_host", "https://BEDROCK-Runtime.US-EAST-1.amazonaws.com/model/x/converse"),
        ("u_upper_scheme", "HTTPS://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse"),
        ("u_ipv6", "http://[::1]:9000/model/y%3A1/converse"),
        ("u_ipv6_default_port", "http://[fe80::1]/model/y/converse"),
        ("u_vpce", "https://vpce-0a1b2c3d-4e5f.bedrock-runtime.us-east-1.vpce.amazonaws.com"
                   "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"),
        ("u_prefix", "https://gateway.example.com/aws/bedrock/model/m%3A0/converse"),
        ("u_dot_segments", "https://example.com/a/./b/../c/model/m%3A0/converse"),
        ("u_double_slash", "https://example.com//model//m%3A0///converse/"),
        ("u_trailing_slash", "https://example.com/model/m%3A0/converse/"),
        ("u_root", "https://example.com/"),
        ("u_no_path", "https://example.com"),
        ("u_no_path_query", "https://example.com?b=1&a=2"),
        ("u_dotdot_above_root", "https://example.com/../../model/m/converse"),
        ("u_encoded_dots", "https://example.com/model/%2E%2E/converse"),
    ]
    for i, (name, url) in enumerate(u):
        out.append(case(name, url, token=TOKEN if i % 2 else "", time_s=TIMES[i % len(TIMES)],
                        method="GET" if i % 5 == 4 else "POST"))
    # Methods, services, credentials.
    out.append(case("method_lower", f"{BEDROCK}/model/m/converse", method="post"))
    out.append(case("method_get_empty", f"{BEDROCK}/foundation-models", method="GET", body=b"",
                    headers=[], service="bedrock"))
    out.append(case("service_s3_style_name", "https://example.com/x%3Ay", service="execute-api"))
    out.append(case("secret_unicode", f"{BEDROCK}/model/m%3A0/converse", secret="sécret/+=ключ"))
    out.append(case("secret_short", f"{BEDROCK}/model/m%3A0/converse", secret="k",
                    access_key_id="ASIAEXAMPLE123", token=TOKEN))
    return out


def main():
    for c in cases():
        bc = dict(c)
        if "url_for_botocore" in c:
            bc["url"] = c.pop("url_for_botocore")
            bc.pop("url_for_botocore")
        lines, canonical = botocore_sign(bc)
        c.pop("params", None)
        c["expect"] = lines
        c["canonical"] = canonical
        sys.stdout.write(json.dumps(c, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
