"""The worker fetches URL parts itself for providers that take no URL
(SPEC §13, worker/engine_fetch.c), through libcurl over real TLS: the
providers and the files are behind nginx with a test CA
(tests/lib/tls.py), which the worker trusts for fetches through
`worker.fetch_ca_file`.

- an image URL goes as a URL to OpenAI and as fetched bytes (inlineData) to
  Gemini; a document by URL is fetched when its job begins, and its pages
  count in the estimate (a cap that one page fits and forty do not);
- a 404, a body over `worker.max_fetch_bytes`, a file of the wrong kind, a
  redirect to plain HTTP and an untrusted server are `invalid_job` naming
  the part, with no provider called; a redirect within https:// is
  followed; a URL's query string (a signed token) is never logged;
- a job's part is fetched once, across a failover between two providers
  that both need its bytes."""
import base64
import json

from tests.lib.stack import Stack

TIMEOUT = 240

SECRET = "sig-5ec7e7-do-not-log"


def model(name, provider, input_usd, output_usd, context, quality):
    return {"name": name, "provider": provider, "id": name, "input_usd_per_mtok": input_usd,
            "output_usd_per_mtok": output_usd, "context_tokens": context,
            "default_max_tokens": 64, "quality": quality, "latency_ms": 600,
            "capabilities": ["json", "vision", "pdf"]}


def models():
    return [model("gpt-4o-mini", "openai", 0.15, 0.60, 128000, 0.62),
            model("gemini-flash", "gemini", 0.075, 0.30, 1000000, 0.58),
            # Two Gemini providers for the failover: the first answers 500.
            model("gemini-a", "gemini", 0.05, 0.20, 1000000, 0.5),
            model("gemini-b", "gemini2", 0.10, 0.40, 1000000, 0.5)]


def rich_stack(fetch_ca=True, max_fetch_bytes=1048576):
    s = Stack(tls="h2", models=models(), log_bodies=True,
              config={"worker": {"max_fetch_bytes": max_fetch_bytes},
                      "router": {"breaker_failures": 100}})
    gemini2 = dict(next(p for p in s.config["providers"] if p["name"] == "gemini"),
                   name="gemini2", base_url=s.provider_url("/gemini2/v1beta", "h2"))
    s.config["providers"].append(gemini2)
    if fetch_ca:
        s.config["worker"]["fetch_ca_file"] = s.tls.ca_file
    s.write_config()
    s.set_fake_rules([{"prefix": "/gemini/v1beta", "model": "gemini-a", "status": 500}])
    return s


def job(jid, kind, url, model=None, **kw):
    """A job whose text names it (to find its calls in the fake's log) with
    one part by URL."""
    part = {"type": kind, "url": url}
    j = {"id": jid, "messages": [{"role": "user", "content": [
        {"type": "text", "text": f"job {jid}: read this"}, part]}], **kw}
    if model:
        j["model"] = model
    return j


def calls_of(requests, jid):
    return [r for r in requests if f"job {jid}:" in json.dumps(r.get("body"))]


def gemini_inline(body):
    return [p["inlineData"] for c in body["contents"] for p in c["parts"] if "inlineData" in p]


def openai_image_urls(body):
    return [p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
            for p in m["content"] if p.get("type") == "image_url"]


def test_fetch_url_parts_over_tls():
    with rich_stack() as s:
        files = s.tls.url("/_files/")
        jobs = [
            job("gem-img", "image", files + "tiny.png", "gemini-flash"),
            job("oa-img", "image", files + "tiny.jpg", "gpt-4o-mini"),
            # 1 page fits the cap; 40 pages (120,000 tokens at $0.075/Mtok)
            # do not: the estimate counted the fetched document's pages.
            job("pdf-1", "document", files + "pages-1.pdf", "gemini-flash",
                max_cost_usd=0.002),
            job("pdf-40", "document", files + "pages-40.pdf", "gemini-flash",
                max_cost_usd=0.002),
            job("redirect", "image", s.tls.url("/_redirect/tiny.gif"), "gemini-flash"),
            job("missing", "image", files + f"nope.png?token={SECRET}", "gemini-flash"),
            job("too-big", "image", files + "big-2000000.png", "gemini-flash"),
            job("not-image", "image", files + "note.txt", "gemini-flash"),
            job("downgrade", "image", s.tls.url("/_redirect_http/tiny.png"), "gemini-flash"),
            job("failover", "image", files + "tiny.webp", models=["gemini-a", "gemini-b"],
                strategy="cheapest"),
            # Sent as a URL to OpenAI, it is never fetched by the worker.
            job("oa-pdf-img", "image", files + "pages-2.pdf", "gpt-4o-mini"),
        ]
        s.produce_jobs([json.dumps(j).encode() for j in jobs])
        w = s.worker()
        results = {r["id"]: r for r in s.results(len(jobs), timeout_s=120)}
        assert w.stop(60) == 0
        reqs = s.fake.requests(bodies=True)
        served = s.fake.stats()["files"]

        for jid in ("gem-img", "oa-img", "pdf-1", "redirect", "failover", "oa-pdf-img"):
            assert results[jid]["status"] == "ok", results[jid]
        # Gemini got the bytes, OpenAI the URL.
        (call,) = calls_of(reqs, "gem-img")
        (inline,) = gemini_inline(call["body"])
        assert inline["mimeType"] == "image/png"
        assert base64.b64decode(inline["data"]).startswith(b"\x89PNG")
        (call,) = calls_of(reqs, "oa-img")
        assert openai_image_urls(call["body"]) == [files + "tiny.jpg"]
        assert "tiny.jpg" not in served and "pages-2.pdf" not in served, served
        # The document by URL: fetched, sent inline, its page counted.
        (call,) = calls_of(reqs, "pdf-1")
        assert [i["mimeType"] for i in gemini_inline(call["body"])] == ["application/pdf"]
        assert call["pdf_pages"] == 1
        assert results["pdf-40"]["status"] == "error"
        assert results["pdf-40"]["error"]["code"] == "cost_cap_exceeded", results["pdf-40"]
        assert served["pages-40.pdf"] == 1 and not calls_of(reqs, "pdf-40")
        # A redirect within https:// is followed.
        (call,) = calls_of(reqs, "redirect")
        assert [i["mimeType"] for i in gemini_inline(call["body"])] == ["image/gif"]

        # Failed fetches: invalid_job naming the part, no provider called.
        for jid, words in (("missing", "failed: HTTP 404"),
                           ("too-big", "larger than worker.max_fetch_bytes (1048576)"),
                           ("not-image", "no PNG, JPEG, GIF or WebP image"),
                           ("downgrade", "failed: ")):
            r = results[jid]
            assert r["status"] == "error" and r["error"]["code"] == "invalid_job", r
            assert r["error"]["message"].startswith("messages[0].content[1].url: "), r
            assert words in r["error"]["message"], r
            assert r["attempts"] == [] and not calls_of(reqs, jid), r
        host = s.tls.url("")[len("https://"):]
        assert results["missing"]["error"]["message"] == \
            f"messages[0].content[1].url: fetching from {host} failed: HTTP 404"
        dlq = {d["job"]["id"]: d for d in s.dlq(5, timeout_s=30)}
        assert set(dlq) == {"missing", "too-big", "not-image", "downgrade", "pdf-40"}
        # The signed URL's query string is in no output and no log line.
        assert SECRET not in w.log_text()
        assert SECRET not in json.dumps(results["missing"])
        assert any(ln.get("msg") == "a content part could not be fetched" and
                   ln.get("host") == host for ln in w.log_lines())

        # Once per job: two Gemini providers, the first failing, one fetch.
        f = results["failover"]
        assert [a["outcome"] for a in f["attempts"]] == ["http_500", "ok"], f
        assert len(calls_of(reqs, "failover")) == 2
        assert served["tiny.webp"] == 1, served
        assert served["tiny.png"] == 1 and served["tiny.gif"] == 1, served


def test_fetch_needs_the_ca_it_is_given():
    """Without worker.fetch_ca_file the worker trusts only the system's CAs,
    so the test CA's server fails the fetch: the CA file is what made the
    other test's fetches work."""
    with rich_stack(fetch_ca=False) as s:
        jobs = [job("untrusted", "image", s.tls.url("/_files/tiny.png"), "gemini-flash"),
                job("as-url", "image", s.tls.url("/_files/tiny.png"), "gpt-4o-mini")]
        s.produce_jobs([json.dumps(j).encode() for j in jobs])
        w = s.worker()
        results = {r["id"]: r for r in s.results(len(jobs), timeout_s=120)}
        assert w.stop(60) == 0
        r = results["untrusted"]
        assert r["status"] == "error" and r["error"]["code"] == "invalid_job", r
        assert r["error"]["message"].startswith("messages[0].content[1].url: fetching from "), r
        # OpenAI takes the URL: nothing to fetch, nothing to trust.
        assert results["as-url"]["status"] == "ok", results["as-url"]
        assert "tiny.png" not in s.fake.stats()["files"]
