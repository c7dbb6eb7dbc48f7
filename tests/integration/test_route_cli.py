"""`promptyard route --json` on a 6-model catalog (issue 5, SPEC §6): each
strategy's choice and chain, ties included, and the reasons models drop;
and the tokens a job's images and pages add on each model (SPEC §13)."""
import base64
import json
import subprocess

from tests.lib import procs
from tests.lib.stack import Stack, bin_path, http

TIMEOUT = 120


def m(name, provider, price_in, price_out, quality, latency, caps=(), ctx=128000):
    return {"name": name, "provider": provider, "id": name, "input_usd_per_mtok": price_in,
            "cached_input_usd_per_mtok": price_in, "output_usd_per_mtok": price_out,
            "context_tokens": ctx, "default_max_tokens": 100, "quality": quality,
            "latency_ms": latency, "capabilities": list(caps)}


CATALOG = [m("tiny", "openai", 0.10, 0.40, 0.40, 300, ctx=8000),
           m("small", "openai", 0.15, 0.60, 0.62, 800, ["json"]),
           m("twin", "openai", 0.15, 0.60, 0.66, 700, ["json"]),  # same price as small
           m("mid", "anthropic", 1.00, 4.00, 0.70, 1200, ["json", "tools"]),
           m("big", "anthropic", 3.00, 15.00, 0.85, 2000, ["json", "vision"]),
           m("huge", "gemini", 10.00, 40.00, 0.90, 5000, ["json", "long_context"])]


def route(s, job):
    path = s.dir / "job.json"
    path.write_text(json.dumps(job))
    p = subprocess.run([bin_path("promptyard"), "route", "--json", "-c", str(s.config_path),
                        str(path)], capture_output=True, timeout=30, env=procs.child_env(s.env))
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def test_route_json_shows_each_strategy():
    with Stack(partitions=1, models=CATALOG) as s:
        s.config["worker"]["metrics_listen"] = ""
        s.write_config()
        base = {"id": "r", "prompt": "hi"}
        r = route(s, dict(base, strategy="cheapest"))
        # ties on price: higher quality first (twin before small)
        assert r["chosen"] == "tiny" and r["chain"] == ["tiny", "twin", "small", "mid", "big", "huge"]
        r = route(s, dict(base, strategy="balanced"))
        # best quality 0.90, slack 0.10: big and huge first, cheapest first
        assert r["chain"][:2] == ["big", "huge"] and r["chain"][2:] == ["tiny", "twin", "small", "mid"]
        r = route(s, dict(base, strategy="fastest"))  # no observations: configured latency
        assert r["chain"] == ["tiny", "twin", "small", "mid", "big", "huge"]
        r = route(s, dict(base, strategy="reliable"))  # no observations: ties by cheapest
        assert r["chain"] == ["tiny", "twin", "small", "mid", "big", "huge"]
        easy = route(s, dict(base, strategy="auto"))
        hard = route(s, {"id": "r", "strategy": "auto", "prompt":
                         "Prove step by step that the algorithm below terminates, then derive its "
                         "complexity, explain the invariants, and rewrite it in C with a proof of "
                         "correctness:\n\ndef f(n):\n    while n > 1:\n        n = n // 2 if n % 2 == 0 "
                         "else 3 * n + 1\n    return n\n\nWhy? What if n is negative? How would you "
                         "test it? Compare with the Collatz conjecture and discuss the proof sketch."})
        quality = {x["name"]: x["quality"] for x in CATALOG}
        assert quality[hard["chosen"]] > quality[easy["chosen"]], (easy["chosen"], hard["chosen"])
        # Reasons for the dropped: capability, context, cost cap.
        r = route(s, dict(base, strategy="cheapest", capabilities=["vision"]))
        assert r["chosen"] == "big" and r["chain"] == ["big"]
        reasons = {x["name"]: x["reason"] for x in r["models"] if not x["eligible"]}
        assert reasons["tiny"] == "capability" and reasons["huge"] == "capability"
        r = route(s, dict(base, strategy="cheapest", max_tokens=7995))
        assert {x["name"]: x["reason"] for x in r["models"] if not x["eligible"]} == {"tiny": "context"}
        r = route(s, dict(base, strategy="cheapest", max_cost_usd=0.0001))
        assert "huge" not in r["chain"]
        assert any(x["reason"] == "cost_cap" for x in r["models"] if not x["eligible"])


def test_route_json_counts_images_and_pages():
    """An image-heavy job (SPEC §13): each model's media_tokens are its
    image_tokens per image plus pdf_page_tokens per page, in its
    input_tokens and estimate; a context too small for them drops it."""
    eye = dict(m("eye", "openai", 0.15, 0.60, 0.6, 500, ["vision", "pdf"]), image_tokens=800,
               pdf_page_tokens=1000)
    wide = m("wide", "anthropic", 1.00, 4.00, 0.7, 500, ["vision", "pdf"])  # 1600 and 3000
    narrow = m("narrow", "gemini", 0.10, 0.40, 0.5, 500, ["vision", "pdf"], ctx=30000)
    with Stack(partitions=1, models=[eye, wide, narrow]) as s:
        s.config["worker"]["metrics_listen"] = ""
        s.write_config()
        status, png = http("GET", s.fake.url("/_files/tiny.png"))
        status2, pdf = http("GET", s.fake.url("/_files/pages-3.pdf"))
        assert status == status2 == 200
        image = {"type": "image", "data": base64.b64encode(png).decode(), "media_type": "image/png"}
        doc = {"type": "document", "data": base64.b64encode(pdf).decode(),
               "media_type": "application/pdf"}
        job = {"id": "scans", "strategy": "cheapest", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "read these"}] + [image] * 20}]}
        r = route(s, job)
        models = {x["name"]: x for x in r["models"]}
        assert {k: v["media_tokens"] for k, v in models.items()} == \
            {"eye": 20 * 800, "wide": 20 * 1600, "narrow": 20 * 1600}
        for x in models.values():
            assert x["input_tokens"] == r["est_input_tokens"] + x["media_tokens"]
        # $0.15 and $0.60 a million tokens: 150 and 600 nano-USD a token.
        eye_in = models["eye"]["input_tokens"]
        assert models["eye"]["estimate_nusd"] == eye_in * 150 + 100 * 600
        # 32,000 image tokens do not fit narrow's 30,000.
        assert models["narrow"]["reason"] == "context" and r["chain"] == ["eye", "wide"]
        job["messages"][0]["content"].append(doc)
        models = {x["name"]: x for x in route(s, job)["models"]}
        assert models["eye"]["media_tokens"] == 20 * 800 + 3 * 1000
        assert models["wide"]["media_tokens"] == 20 * 1600 + 3 * 3000
