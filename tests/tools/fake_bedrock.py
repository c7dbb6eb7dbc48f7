#!/usr/bin/python3
"""fake_bedrock: a loopback fake of Amazon Bedrock's Converse API that checks
every request's AWS Signature V4 with botocore (Debian's python3-botocore,
the independent implementation), for tests/integration/test_bedrock.py.

    from tests.tools.fake_bedrock import FakeBedrock
    fake = FakeBedrock({"AKIDEXAMPLE": (secret, None)})   # access key -> (secret, token)
    fake.base                 "http://127.0.0.1:PORT": a provider's base_url
    fake.throttle(model_id, every=2, status=429, retry_after_s=None)
                              throttle every 2nd call of a model (with a Retry-After)
    fake.requests()           what it received and answered, one dict per request
    fake.close()

    /usr/bin/python3 tests/tools/fake_bedrock.py [--port N]
        the same, standalone, with the credentials of $AWS_ACCESS_KEY_ID,
        $AWS_SECRET_ACCESS_KEY and $AWS_SESSION_TOKEN; prints "port=N".

A request is taken as AWS takes it: POST {prefix}/model/{id}/converse, the
id one percent-encoded path segment. Its signature is recomputed by
botocore from the request as received (the path as sent, the headers its
Authorization names, the body) and the secret of its access key; the
X-Amz-Date must be within AWS's 5 minutes of now, and a key given a session
token must send it as X-Amz-Security-Token. A request that fails is
answered as Bedrock answers it: 403 with x-amzn-ErrorType
UnrecognizedClientException (an unknown key or a bad token) or
InvalidSignatureException (the message quoting the canonical request, as
AWS does), and a body {"message": ...}. A signed request whose body is not
a Converse request (messages of user and assistant turns of content blocks,
inferenceConfig.maxTokens a positive integer when given) is a 400
ValidationException. Others get a Converse answer: one text block, stopReason
end_turn, and usage whose counts are worked out from the request (input:
the body's bytes / 4 + 10; output: 5 + the last user text's length % 23, at
most maxTokens), so a test can price every call from requests().

Throttling, as Bedrock does it: ThrottlingException as a 429 with
x-amzn-ErrorType, or (status=400) as a 400 whose body carries
"__type": "ThrottlingException", the shape of AWS's JSON-1.x protocols; with
retry_after_s, a Retry-After header too.
"""
import datetime
import http.server
import json
import os
import re
import sys
import threading
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")
PATH_RE = re.compile(r"^(.*)/model/([^/?]+)/converse(\?.*)?$")
ERROR_TYPE = "{}:http://internal.amazon.com/coral/com.amazon.bedrock/"
MAX_SKEW_S = 300


def botocore_verify(method, path, headers, body, secret):
    """Verifies a received request as AWS would, with botocore: returns
    (ok, why), why being botocore's canonical request. headers: the
    received (name, value) pairs."""
    hdr = {}
    for k, v in headers:
        hdr.setdefault(k.lower(), []).append(v)
    auth = hdr.get("authorization", [""])[0]
    m = AUTH_RE.match(auth)
    if not m:
        return False, f"no SigV4 Authorization header: {auth[:40]!r}"
    akid, date8, region, service, signed, sig = m.groups()
    signed = signed.split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return False, "host or x-amz-date unsigned"
    if hdr["x-amz-date"][0][:8] != date8:
        return False, "the scope's date is not X-Amz-Date's"
    req = AWSRequest(method=method, url="http://" + hdr["host"][0] + path, data=body)
    for name in signed:
        for v in hdr.get(name, []):
            req.headers[name] = v
    signer = SigV4Auth(Credentials(akid, secret), service, region)
    req.context["timestamp"] = hdr["x-amz-date"][0]
    canonical = signer.canonical_request(req)
    want = signer.signature(signer.string_to_sign(req, canonical), req)
    if want != sig:
        return False, f"signature mismatch; botocore's canonical request:\n{canonical}"
    return True, canonical


def _is_block(b):
    return isinstance(b, dict) and len(b) == 1 and next(iter(b)) in (
        "text", "image", "document", "toolUse", "toolResult", "reasoningContent", "cachePoint")


def converse_problem(req):
    """Why a decoded body is no Converse request, or None."""
    if not isinstance(req, dict) or not isinstance(req.get("messages"), list) or not req["messages"]:
        return "messages: must be a non-empty list"
    for i, msg in enumerate(req["messages"]):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: must be user or assistant"
        if not isinstance(msg.get("content"), list) or not all(map(_is_block, msg["content"])):
            return f"messages.{i}.content: must be a list of content blocks"
    cfg = req.get("inferenceConfig", {})
    if "maxTokens" in cfg and not (isinstance(cfg["maxTokens"], int) and cfg["maxTokens"] >= 1):
        return "inferenceConfig.maxTokens: must be an integer of at least 1"
    return None


def last_user_text(req):
    for msg in reversed(req["messages"]):
        if msg["role"] == "user":
            for b in msg["content"]:
                if "text" in b:
                    return b["text"]
    return ""


class FakeBedrock:
    """The fake, serving on a thread of this process until close()."""

    def __init__(self, credentials, port=0):
        self.credentials = dict(credentials)  # access key id -> (secret, session token or None)
        self._lock = threading.Lock()
        self._requests = []
        self._throttles = {}  # model id -> [every, status, calls, retry_after_s]
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, extra, answer, rec = outer._answer(self.path, self.headers.items(), body)
                with outer._lock:
                    outer._requests.append(rec)  # before the answer: a test sees it at once
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("x-amzn-RequestId", f"fake-{id(rec):x}")
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def throttle(self, model_id, every=1, status=429, retry_after_s=None):
        """Answers every `every`-th call of model_id (the 1st, the 1+every-th, ...)
        with a ThrottlingException (and Retry-After: retry_after_s, if given);
        every=0 stops it."""
        with self._lock:
            if every:
                self._throttles[model_id] = [every, status, 0, retry_after_s]
            else:
                self._throttles.pop(model_id, None)

    def requests(self):
        with self._lock:
            return list(self._requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    _cleanup = close  # for tests.lib.procs.register

    # -- one request

    def _auth_failure(self, path, headers, body):
        """(error type, message) when the request would not pass AWS's
        checks, else None; also the access key id."""
        hdr = {k.lower(): v for k, v in headers}
        m = AUTH_RE.match(hdr.get("authorization", ""))
        if not m:
            return ("MissingAuthenticationTokenException", "Missing Authentication Token"), None
        akid = m.group(1)
        if akid not in self.credentials:
            return ("UnrecognizedClientException",
                    "The security token included in the request is invalid."), akid
        secret, token = self.credentials[akid]
        if token is not None and hdr.get("x-amz-security-token") != token:
            return ("UnrecognizedClientException",
                    "The security token included in the request is invalid."), akid
        try:
            sent = datetime.datetime.strptime(hdr.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ")
        except ValueError:
            return ("IncompleteSignatureException", "X-Amz-Date is malformed."), akid
        now = datetime.datetime.utcnow()
        if abs((now - sent).total_seconds()) > MAX_SKEW_S:
            return ("InvalidSignatureException",
                    f"Signature expired: {hdr['x-amz-date']} is now earlier than "
                    f"{now:%Y%m%dT%H%M%SZ}"), akid
        ok, why = botocore_verify("POST", path, headers, body, secret)
        if not ok:
            canonical = why.split("\n", 1)[1] if "\n" in why else why
            return ("InvalidSignatureException",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method. Consult the "
                    "service documentation for details.\n\nThe Canonical String for this "
                    f"request should have been\n'{canonical}'\n"), akid
        return None, akid

    def _answer(self, path, headers, body):
        """(status, extra headers, answer, record) for one request."""
        rec = {"path": path, "model_id": None, "verified": False, "status": 0, "usage": None,
               "token": any(k.lower() == "x-amz-security-token" for k, _ in headers),
               "error_type": None}

        def error(status, error_type, message):
            rec["status"], rec["error_type"] = status, error_type
            return status, {"x-amzn-ErrorType": ERROR_TYPE.format(error_type)}, \
                {"message": message}, rec

        m = PATH_RE.match(path)
        if not m:
            return error(404, "UnknownOperationException", "Unknown operation")
        rec["model_id"] = urllib.parse.unquote(m.group(2))
        failure, rec["access_key_id"] = self._auth_failure(path, headers, body)
        if failure:
            return error(403, *failure)
        rec["verified"] = True
        try:
            req = json.loads(body)
        except ValueError:
            req = None
        problem = converse_problem(req)
        if problem:
            return error(400, "ValidationException", f"1 validation error detected: {problem}")
        with self._lock:
            t = self._throttles.get(rec["model_id"])
            throttled = False
            if t:
                throttled = t[2] % t[0] == 0
                t[2] += 1
        retry = {"Retry-After": str(t[3])} if throttled and t[3] is not None else {}
        if throttled and t[1] == 400:
            rec["status"], rec["error_type"] = 400, "ThrottlingException"
            return 400, retry, {"__type": "com.amazon.coral.availability#ThrottlingException",
                                "message": "Rate exceeded"}, rec
        if throttled:
            status, extra, answer, rec = error(429, "ThrottlingException",
                                               "Too many requests, please wait before trying again.")
            return status, {**extra, **retry}, answer, rec
        text = last_user_text(req)
        max_tokens = req.get("inferenceConfig", {}).get("maxTokens", 4096)
        inp = len(body) // 4 + 10
        out = min(max_tokens, 5 + len(text.encode()) % 23)
        usage = {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out}
        rec["status"], rec["usage"] = 200, usage
        return 200, {}, {
            "output": {"message": {"role": "assistant",
                                   "content": [{"text": f"Answer to: {text[:40]}"}]}},
            "stopReason": "end_turn", "usage": usage, "metrics": {"latencyMs": 12}}, rec


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    akid, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not akid or not secret:
        sys.exit("fake_bedrock: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    fake = FakeBedrock({akid: (secret, os.environ.get("AWS_SESSION_TOKEN") or None)}, port)
    print(f"port={fake.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.close()


if __name__ == "__main__":
    main()
