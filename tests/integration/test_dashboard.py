"""promptyard dashboard (SPEC §15) on a running stack, read by a real browser.

A worker runs jobs on two budgets and three models of the fake provider (one
of them failing); then `promptyard dashboard` serves the fleet, /api/summary
is checked against what Redis and the costs topic hold, and headless
Chromium (Debian's) loads the page: its DOM must show the budgets, their
spend and every model's spend as Redis has them, without a script error.

Job counts (jobs:ok, jobs:error:<code>) are the worker's: each job once,
when its result is in Kafka (ledger_stats_jobs, flushed with the
done-marks), so the summary shows this run's ten ok jobs and two errors."""
import json
import shutil
import signal
import subprocess
from datetime import datetime, timezone
from html.parser import HTMLParser

from tests.lib import procs
from tests.lib.browser import chromium, script_errors
from tests.lib.stack import Stack, bin_path, http_get

TIMEOUT = 300

BUDGETS = [{"name": "org", "limit_usd": 50.0, "period": "month", "parent": ""},
           {"name": "team", "limit_usd": 5.0, "period": "day", "parent": "org"}]


def usd(nusd):
    """As the page and the command line print nano-USD: "$0.0001794", "$12"."""
    whole, frac = divmod(abs(nusd), 10**9)
    text = f"{whole}" + (f".{frac:09d}".rstrip("0") if frac else "")
    return ("-$" if nusd < 0 else "$") + text


class Dom(HTMLParser):
    """The rows of the page's tables (tr with a data-* key) and their cells,
    and the status line."""

    def __init__(self):
        super().__init__()
        self.rows = []     # {"attrs": {...}, "cells": [{"attrs", "text"}]}
        self.status = ""
        self._cell = None
        self._in_status = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self.rows.append({"attrs": a, "cells": []})
        elif tag == "td" and self.rows:
            self._cell = {"attrs": a, "text": ""}
            self.rows[-1]["cells"].append(self._cell)
        elif a.get("id") == "status":
            self._in_status = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "span":
            self._in_status = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._in_status:
            self.status += data

    def row(self, key, value):
        found = [r for r in self.rows if r["attrs"].get(key) == value]
        assert len(found) == 1, (key, value, [r["attrs"] for r in self.rows])
        return found[0]

    @staticmethod
    def cell(row, cls):
        found = [c for c in row["cells"] if cls in c["attrs"].get("class", "").split()]
        assert len(found) == 1, (cls, row)
        return found[0]


class Dashboard:
    """bin/promptyard dashboard on a free port; .url once it listens."""

    def __init__(self, cfg, tmpdir, listen="127.0.0.1:0"):
        self.err_path = tmpdir / "dashboard.err"
        self._err = open(self.err_path, "wb")
        procs.attach_log("dashboard", self.err_path)
        self.proc = procs.Proc([bin_path("promptyard"), "dashboard", "-c", str(cfg),
                                "--listen", listen], stdout=subprocess.PIPE, stderr=self._err)
        line = procs.read_line(self.proc.popen.stdout, 30, "promptyard dashboard")
        assert line.startswith("dashboard: http://"), line
        self.url = line[len("dashboard: "):]

    def summary(self):
        status, body = http_get(self.url + "api/summary")
        return status, json.loads(body)

    def stop(self):
        rc = self.proc.terminate(timeout=20)
        self._err.close()
        return rc


def stats_from_redis(r, prefix, day):
    """{(provider, model): [spend today, calls today, spend month, calls month]}
    from the ledger's day hashes of the month so far."""
    out = {}
    for key in r.scan_iter(match=f"{prefix}{{ledger}}:stats:d:{day[:8]}*"):
        this_day = key.decode().rsplit(":", 1)[1]
        for field, value in r.hgetall(key).items():
            kind, _, pm = field.decode().partition(":")
            if kind not in ("spend", "calls"):
                continue
            provider, _, model = pm.partition(":")
            row = out.setdefault((provider, model), [0, 0, 0, 0])
            col = 0 if kind == "spend" else 1
            row[col + 2] += int(value)
            if this_day == day:
                row[col] += int(value)
    return out


def test_dashboard_shows_the_fleet(tmpdir):
    s = Stack(budgets=BUDGETS, config={"router": {"breaker_failures": 100},
                                       "worker": {"default_budget": "org"}})
    with s:
        # One provider with an rpm, for the rate limits; gemini answers 500.
        s.config["providers"][1]["rpm"] = 6000
        s.write_config()
        s.set_fake_rules([{"prefix": "/gemini/v1beta", "model": "*", "status": 500},
                          {"prefix": "/openai/v1", "model": "*", "latency_ms": 5},
                          {"prefix": "/anthropic/v1", "model": "*", "latency_ms": 5}])
        jobs = [{"id": f"mini-{i}", "prompt": f"summarise doc {i}", "model": "gpt-4o-mini",
                 "budget": "team"} for i in range(6)]
        jobs += [{"id": f"haiku-{i}", "prompt": f"classify doc {i} " + "x" * 40 * i,
                  "model": "claude-haiku", "budget": "org"} for i in range(4)]
        jobs += [{"id": "flash-1", "prompt": "this one fails", "model": "gemini-flash",
                  "budget": "org"}]
        s.produce_jobs([json.dumps(j).encode() for j in jobs] + [b"not json"])
        w = s.worker()
        results = s.results(len(jobs) + 1, timeout_s=90)
        by_id = {r["id"]: r for r in results}
        assert all(by_id[j["id"]]["status"] == "ok" for j in jobs[:10]), results
        assert by_id["flash-1"]["status"] == "error", by_id["flash-1"]
        assert w.stop(60) == 0
        costs = s.costs(timeout_s=10)

        r = s.redis.client()
        prefix = s.config["redis"]["key_prefix"]
        d = Dashboard(s.config_path, tmpdir)
        status, summary = d.summary()
        assert status == 200, summary
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        assert (summary["day"], summary["month"]) == (day, day[:7]), summary

        # Budgets: exactly what `budget show --json` says.
        p = subprocess.run([bin_path("promptyard"), "budget", "show", "--json", "-c",
                            str(s.config_path)], capture_output=True, timeout=60,
                           env=procs.child_env())
        assert p.returncode == 0, p.stderr
        assert summary["budgets"] == json.loads(p.stdout)["budgets"]
        budgets = {b["name"]: b for b in summary["budgets"]}
        assert set(budgets) == {"org", "team"}
        assert budgets["team"]["spent_nusd"] > 0 and budgets["team"]["reserved_nusd"] == 0

        # Models: the day hashes, and the cost records (SPEC §4) per model.
        stats = stats_from_redis(r, prefix, day)
        models = {(m["provider"], m["model"]): m for m in summary["models"]}
        assert set(models) == set(stats), (models, stats)
        assert {("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku"),
                ("gemini", "gemini-flash")} <= set(models)
        for key, m in models.items():
            assert list(m)[:5] == ["model", "provider", "spend_today_usd", "spend_month_usd",
                                   "calls_today"], m
            assert [m["spend_today_nusd"], m["calls_today"], m["spend_month_nusd"],
                    m["calls_month"]] == stats[key], (key, m, stats[key])
            assert abs(m["spend_today_usd"] - m["spend_today_nusd"] / 1e9) < 1e-12
            recorded = sum(c["cost_nusd"] for c in costs if (c["provider"], c["model"]) == key)
            assert m["spend_month_nusd"] == recorded, (key, m, recorded)
        assert models[("openai", "gpt-4o-mini")]["calls_today"] == 6
        assert models[("anthropic", "claude-haiku")]["calls_today"] == 4
        flash = models[("gemini", "gemini-flash")]
        assert flash["calls_today"] >= 1 and flash["spend_today_nusd"] == 0, flash
        # The ledger's spend is the sum of the stats: team is gpt-4o-mini's
        # jobs alone; org (its parent, a month) all of them.
        assert budgets["team"]["spent_nusd"] == models[("openai", "gpt-4o-mini")]["spend_today_nusd"]
        assert budgets["org"]["spent_nusd"] == sum(m["spend_month_nusd"] for m in models.values())

        assert set(summary["jobs"]) == {"today", "month"}
        counts = {"ok": 10, "error": 2, "by_code": {"providers_failed": 1, "invalid_job": 1}}
        assert summary["jobs"]["today"] == counts, summary["jobs"]
        assert summary["jobs"]["month"] == counts, summary["jobs"]

        circuits = {c["model"]: c for c in summary["circuits"]}
        assert set(circuits) == {m["name"] for m in s.config["models"]}
        assert circuits["gpt-4o-mini"]["state"] == "closed"
        procs.wait_until(lambda: {c["model"]: c for c in d.summary()[1]["circuits"]}
                         ["gemini-flash"]["fail"] >= 1, 15, interval=0.5,
                         what="gemini-flash's failure in the health view")
        # anthropic's bucket: 6000 a minute, a burst of 100, refilled since the run.
        (rl,) = summary["rate_limits"]
        assert {k: rl[k] for k in ("provider", "rpm", "tpm", "burst_requests")} == \
            {"provider": "anthropic", "rpm": 6000, "tpm": 0, "burst_requests": 100}, rl
        assert 0 <= rl["requests_available"] <= 100, rl
        assert summary["batches"] == []

        # A batch in flight as batch mode records it (the reader's contract).
        r.zadd(f"{prefix}{{ledger}}:batches", {"batch_abc": 1})
        r.hset(f"{prefix}{{ledger}}:batch:batch_abc",
               mapping={"provider": "openai", "model": "gpt-4o-mini", "state": "in_progress",
                        "requests_total": 3, "requests_done": 1, "requests_failed": 0,
                        "complete_by": "2030-01-01T06:00:00Z", "reserved_nusd": 1500,
                        "spent_nusd": 500})
        batches = procs.wait_until(lambda: d.summary()[1]["batches"], 10, interval=0.3)
        assert batches == [{"id": "batch_abc", "provider": "openai", "model": "gpt-4o-mini",
                            "state": "in_progress", "requests_total": 3, "requests_done": 1,
                            "requests_failed": 0, "complete_by": "2030-01-01T06:00:00Z",
                            "reserved_nusd": 1500, "spent_nusd": 500}], batches

        # The page in a real browser.
        html, err = chromium(d.url, tmpdir)
        assert not script_errors(err), script_errors(err)
        dom = Dom()
        dom.feed(html)
        assert dom.status.startswith("updated "), dom.status
        for name, b in budgets.items():
            spent = int(r.hget(f"{prefix}{{ledger}}:b:{name}:"
                               f"{day if b['period'] == 'day' else day[:7]}", "spent"))
            cell = Dom.cell(dom.row("data-budget", name), "spent")
            assert int(cell["attrs"]["data-nusd"]) == spent, (name, cell, spent)
            assert cell["text"].strip() == usd(spent), (name, cell, usd(spent))
            limit = Dom.cell(dom.row("data-budget", name), "limit")
            assert limit["text"].strip() == usd(b["limit_nusd"])
        for (provider, model), (spend, calls, _, _) in stats.items():
            row = dom.row("data-model", model)
            assert row["attrs"]["data-provider"] == provider
            cell = Dom.cell(row, "spend-today")
            assert int(cell["attrs"]["data-nusd"]) == spend
            assert cell["text"].strip() == usd(spend), (model, cell)
            assert Dom.cell(row, "calls-today")["text"].strip() == str(calls)
        assert dom.row("data-batch", "batch_abc")
        assert 'data-circuit="gemini-flash"' in html
        # No secret reaches the page or the JSON.
        _, body = http_get(d.url + "api/summary")
        for secret in s.env.values():
            assert secret not in html and secret.encode() not in body

        # Redis away: the API says so, the page too (and keeps no script error).
        s.redis.kill()
        procs.wait_until(lambda: d.summary()[0] == 503, 10, interval=0.3, what="503")
        status, doc = d.summary()
        assert "redis" in doc["error"], doc
        html, err = chromium(d.url, tmpdir)
        assert not script_errors(err), script_errors(err)
        dom = Dom()
        dom.feed(html)
        assert dom.status.startswith("cannot refresh"), dom.status
        s.redis.start()
        procs.wait_until(lambda: d.summary()[0] == 200, 15, interval=0.3, what="redis back")
        assert d.stop() == 0


def test_dashboard_routes_and_listen(tmpdir):
    s = Stack(metrics=False)
    with s:
        d = Dashboard(s.config_path, tmpdir)
        status, page = http_get(d.url)
        assert status == 200 and page.startswith(b"<!doctype html>"), page[:100]
        # Self-contained: nothing is fetched from elsewhere.
        for outside in (b"http://", b"https://", b"//cdn", b"<link rel=\"stylesheet\""):
            assert outside not in page.replace(b"http://www.w3.org/2000/svg", b""), outside
        status, body = http_get(d.url + "nope")
        assert status == 404, body
        # A fleet no worker has run on: Redis holds nothing yet, and the page
        # renders that without a script error.
        status, summary = d.summary()
        assert status == 200, summary
        assert summary["budgets"] == [] and summary["models"] == [] and summary["batches"] == []
        assert summary["jobs"]["today"] == {"ok": 0, "error": 0, "by_code": {}}
        html, err = chromium(d.url, tmpdir)
        assert not script_errors(err), script_errors(err)
        for empty in ("No budgets in Redis.", "No calls this month.", "No batches in flight."):
            assert empty in html, empty
        assert d.stop() == 0

        # Not loopback: served, with a warning. A bad address: exit 2.
        d = Dashboard(s.config_path, tmpdir, listen=":0")
        assert d.stop() == 0
        assert "not a loopback address" in d.err_path.read_text()
        p = subprocess.run([bin_path("promptyard"), "dashboard", "-c", str(s.config_path),
                            "--listen", "nowhere"], capture_output=True, timeout=30,
                           env=procs.child_env())
        assert p.returncode == 2 and b"--listen" in p.stderr, p


def test_dev_dashboard_and_screenshot(tmpdir):
    """`promptyard dev --dashboard ADDR` (the README's screenshot step): the
    dashboard serves the demo's stack and stays up after the run until
    SIGINT; Chromium's --screenshot of it is a PNG."""
    port = procs.free_port()
    err_path = tmpdir / "dev.err"
    with open(err_path, "wb") as err, open(tmpdir / "dev.out", "wb") as out:
        dev = procs.Proc([bin_path("promptyard"), "dev", "--count", "12", "--dashboard",
                          f"127.0.0.1:{port}"], env={"TMPDIR": str(tmpdir)}, stdout=out,
                         stderr=err)
    procs.attach_log("dev", err_path)
    procs.wait_until(lambda: "the dashboard stays up" in err_path.read_text() or
                     not dev.running(), 240, interval=0.5, what="the demo's end")
    assert dev.running(), err_path.read_text()
    url = f"http://127.0.0.1:{port}/"
    status, body = http_get(url + "api/summary")
    assert status == 200, body
    summary = json.loads(body)
    budgets = {b["name"]: b for b in summary["budgets"]}
    assert set(budgets) == {"demo", "org"} and budgets["demo"]["spent_nusd"] > 0, budgets
    assert sum(m["spend_today_nusd"] for m in summary["models"]) == budgets["demo"]["spent_nusd"]
    assert sum(m["calls_today"] for m in summary["models"]) >= 12

    exe = shutil.which("chromium")
    shot = tmpdir / "dashboard.png"
    p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        f"--user-data-dir={tmpdir}/chromium", "--virtual-time-budget=4000",
                        "--window-size=1280,1000", f"--screenshot={shot}", url],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000

    assert dev.signal(signal.SIGINT)
    assert dev.wait(60) == 0, err_path.read_text()
    assert http_get_or_none(url) is None, "the dashboard outlived promptyard dev"


def http_get_or_none(url):
    try:
        return http_get(url, timeout=5)
    except OSError:
        return None
