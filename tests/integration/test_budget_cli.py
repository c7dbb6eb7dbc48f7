"""bin/promptyard budget (SPEC §7, §10) against a real redis-server: set, show
and reset round trips, the --json shape, parents, the config's budgets, bad
input (exit 2) and an unreachable Redis (exit 1)."""
import datetime
import json
import subprocess

from tests.lib import procs
from tests.lib.stack import Redis, bin_path, write_config

TIMEOUT = 120
PREFIX = "bt:"
JSON_KEYS = ["name", "period", "window_start", "parent", "limit_nusd", "spent_nusd",
             "reserved_nusd", "limit_usd", "spent_usd", "reserved_usd"]


def config(tmpdir, redis_port, budgets=None, name="budget.cfg"):
    cfg = {
        "kafka": {"brokers": "127.0.0.1:1", "input_topics": ["jobs"]},
        "redis": {"host": "127.0.0.1", "port": redis_port, "key_prefix": PREFIX},
        "providers": [{"name": "p", "type": "openai", "base_url": "http://127.0.0.1:1/v1",
                       "api_key_env": ""}],
        "models": [{"name": "m", "provider": "p", "input_usd_per_mtok": 1.0,
                    "output_usd_per_mtok": 2.0}],
    }
    if budgets is not None:
        cfg["budgets"] = budgets
        cfg["worker"] = {"default_budget": budgets[0]["name"]}
    return write_config(tmpdir / name, cfg)


def budget(cfg, *args, env=None):
    """(exit code, stdout, stderr) of `promptyard budget ARGS -c CFG`."""
    p = subprocess.run([bin_path("promptyard"), "budget", *args, "-c", str(cfg)],
                       env=procs.child_env(env or {}), capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def show_json(cfg, *names):
    rc, out, err = budget(cfg, "show", *names, "--json")
    assert rc == 0, (rc, out, err)
    doc = json.loads(out)
    assert list(doc) == ["budgets"], doc
    return {b["name"]: b for b in doc["budgets"]}


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def parse_rfc3339(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_set_show_reset_round_trip(tmpdir):
    r = Redis(tmpdir=tmpdir)
    cfg = config(tmpdir, r.port)
    rc, out, err = budget(cfg, "show", "--json")
    assert rc == 0, err
    assert json.loads(out) == {"budgets": []}

    rc, out, err = budget(cfg, "set", "nightly", "--limit-usd", "12.5", "--period", "day")
    assert rc == 0, (out, err)
    assert "nightly" in out
    b = show_json(cfg)["nightly"]
    assert list(b) == JSON_KEYS, list(b)
    assert b["period"] == "day" and b["parent"] == ""
    assert b["limit_nusd"] == 12_500_000_000 and isinstance(b["limit_nusd"], int)
    assert b["spent_nusd"] == 0 and b["reserved_nusd"] == 0
    assert b["limit_usd"] == 12.5 and b["spent_usd"] == 0 and b["reserved_usd"] == 0
    start = parse_rfc3339(b["window_start"])
    assert start.strftime("%Y-%m-%d") == today() and (start.hour, start.minute) == (0, 0), b

    # Redis is the truth: what the scripts record shows up, in nano-USD exactly.
    key = f"{PREFIX}{{ledger}}:b:nightly:{today()}"
    r.client().hset(key, mapping={"spent": 1_234_567_891, "reserved": 5})
    b = show_json(cfg, "nightly")["nightly"]
    assert (b["spent_nusd"], b["reserved_nusd"]) == (1_234_567_891, 5), b
    assert abs(b["spent_usd"] - 1.234567891) < 1e-12, b

    # The table names the budget and its window.
    rc, out, err = budget(cfg, "show")
    assert rc == 0, err
    assert "nightly" in out and today() in out and "$12.5" in out, out

    # A new limit keeps the period and the spend.
    rc, out, err = budget(cfg, "set", "nightly", "--limit-usd", "20")
    assert rc == 0, err
    b = show_json(cfg)["nightly"]
    assert (b["limit_nusd"], b["period"], b["spent_nusd"]) == (20_000_000_000, "day",
                                                               1_234_567_891), b

    # reset: spent of the current window to zero; reservations kept.
    rc, out, err = budget(cfg, "reset", "nightly")
    assert rc == 0, err
    b = show_json(cfg)["nightly"]
    assert (b["spent_nusd"], b["reserved_nusd"]) == (0, 5), b
    assert int(r.client().hget(key, "reset_nusd")) == 1_234_567_891

    # A budget of period none starts its window at its creation or last reset.
    rc, _, err = budget(cfg, "set", "total", "--limit-usd", "0.000000001")
    assert rc == 0, err
    t = show_json(cfg)["total"]
    assert t["period"] == "none" and t["limit_nusd"] == 1, t
    parse_rfc3339(t["window_start"])


def test_parent_and_config_budgets(tmpdir):
    r = Redis(tmpdir=tmpdir)
    cfg = config(tmpdir, r.port, budgets=[
        {"name": "nightly", "limit_usd": 10.0, "period": "day", "parent": "org"},
        {"name": "org", "limit_usd": 100.0, "period": "month", "parent": ""},
    ])
    # The config's budgets are there before any worker ran.
    bs = show_json(cfg)
    assert set(bs) == {"nightly", "org"}, bs
    assert bs["nightly"]["parent"] == "org" and bs["org"]["period"] == "month"
    month_start = parse_rfc3339(bs["org"]["window_start"])
    assert month_start.day == 1 and month_start.hour == 0

    # A Redis-only child of a config budget.
    rc, out, err = budget(cfg, "set", "team", "--limit-usd", "5", "--period", "day",
                          "--parent", "nightly")
    assert rc == 0, err
    assert show_json(cfg, "team")["team"]["parent"] == "nightly"

    # Changed in Redis, the config's values are not written over by the CLI.
    rc, _, err = budget(cfg, "set", "org", "--limit-usd", "250")
    assert rc == 0, err
    assert show_json(cfg)["org"]["limit_nusd"] == 250_000_000_000

    # A chain of five, or a cycle, is refused with exit 2 and nothing changes.
    rc, _, err = budget(cfg, "set", "sub", "--limit-usd", "1", "--parent", "team")
    assert rc == 0, err   # sub -> team -> nightly -> org: four
    rc, _, err = budget(cfg, "set", "leaf", "--limit-usd", "1", "--parent", "sub")
    assert rc == 2 and "longer than 4" in err, (rc, err)
    assert "leaf" not in show_json(cfg)
    rc, _, err = budget(cfg, "set", "org", "--limit-usd", "1", "--parent", "team")
    assert rc == 2 and "cycle" in err, (rc, err)
    assert show_json(cfg)["org"]["parent"] == ""

    # Detach with --parent "".
    rc, _, err = budget(cfg, "set", "team", "--limit-usd", "5", "--parent", "")
    assert rc == 0, err
    assert show_json(cfg)["team"]["parent"] == ""


def test_bad_input_exits_2(tmpdir):
    r = Redis(tmpdir=tmpdir)
    cfg = config(tmpdir, r.port)
    assert budget(cfg, "set", "a", "--limit-usd", "1")[0] == 0
    cases = [
        (["set", "x"], "--limit-usd"),
        (["set", "x", "--limit-usd", "abc"], "--limit-usd"),
        (["set", "x", "--limit-usd", "-1"], "--limit-usd"),
        (["set", "x", "--limit-usd", "1.0000000001"], "--limit-usd"),
        # Above 2^53 - 1 nano-USD, what the ledger's scripts compare exactly.
        (["set", "x", "--limit-usd", "9007199.254740992"], "from 0 to 9007199.254740991"),
        (["set", "x", "--limit-usd", "1", "--period", "week"], "--period"),
        (["set", "x", "--limit-usd", "1", "--parent", "ghost"], "ghost"),
        (["set", "x", "--limit-usd", "1", "--parent", "x"], "own parent"),
        (["set", "--limit-usd", "1"], "NAME"),
        (["show", "ghost"], "ghost"),
        (["show", "ghost", "--json"], "ghost"),
        (["reset", "ghost"], "ghost"),
        (["reset"], "NAME"),
        (["frobnicate"], "frobnicate"),
        (["show", "a", "b"], "unexpected"),
        (["show", "--bogus"], ""),
    ]
    for args, word in cases:
        rc, out, err = budget(cfg, *args)
        assert rc == 2, (args, rc, out, err)
        assert word in err, (args, err)
        if args[0] == "show":
            assert out == "", (args, out)
    assert set(show_json(cfg)) == {"a"}
    assert budget(cfg, "set", "a", "--limit-usd", "9007199.254740991")[0] == 0
    assert show_json(cfg)["a"]["limit_nusd"] == 2**53 - 1

    # No config: exit 2 naming the file.
    p = subprocess.run([bin_path("promptyard"), "budget", "show", "-c",
                        str(tmpdir / "missing.cfg")], capture_output=True, timeout=30,
                       env=procs.child_env())
    assert p.returncode == 2 and b"missing.cfg" in p.stderr, p


def test_redis_down_exits_1(tmpdir):
    r = Redis(tmpdir=tmpdir)
    cfg = config(tmpdir, r.port)
    assert budget(cfg, "set", "a", "--limit-usd", "1")[0] == 0
    r.kill()
    for args in (["show"], ["show", "--json"], ["set", "a", "--limit-usd", "2"], ["reset", "a"]):
        rc, out, err = budget(cfg, *args)
        assert rc == 1, (args, rc, out, err)
        assert "redis" in err.lower(), err
    # --redis overrides the file's address.
    r.start()
    other = config(tmpdir, procs.free_port(), name="other.cfg")
    rc, out, err = budget(other, "show", "--json")
    assert rc == 1, (rc, err)
    rc, out, err = budget(other, "show", "--json", "--redis", r.address)
    assert rc == 0, err
    assert json.loads(out) == {"budgets": []}   # no persistence: a fresh Redis
