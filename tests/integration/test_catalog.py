"""`promptyard catalog import` and `catalog check` (SPEC §15, issue 18).

The import of tests/fixtures/litellm_prices_excerpt.json is compared with
prices computed here with Python's decimal module from the fixture's own
number text, to the nano-USD; a config built from it is loaded by
`catalog check`, which must find no difference. Then prices changed in
several kinds (input, cached, cache write, batch) must each be listed,
malformed files and command lines must fail with the right status, and
deploy/models.cfg must carry exactly the prices of the LiteLLM excerpt it was
imported from."""
import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

from tests.lib.libconfig import write_config
from tests.lib.procs import REPO, bin_path, child_env

TIMEOUT = 120
FIXTURE = REPO / "tests" / "fixtures" / "litellm_prices_excerpt.json"
UPSTREAM = REPO / "tests" / "fixtures" / "litellm_upstream_excerpt.json"

# LiteLLM's price keys and the config keys import writes them to.
PRICE_KEYS = {
    "input_cost_per_token": "input_usd_per_mtok",
    "cache_read_input_token_cost": "cached_input_usd_per_mtok",
    "cache_creation_input_token_cost": "cache_write_usd_per_mtok",
    "output_cost_per_token": "output_usd_per_mtok",
    "input_cost_per_token_batches": "batch_input_usd_per_mtok",
    "output_cost_per_token_batches": "batch_output_usd_per_mtok",
}


def catalog(*args):
    return subprocess.run([bin_path("promptyard"), "catalog", *map(str, args)],
                          capture_output=True, text=True, timeout=60, env=child_env())


def fixture(path=FIXTURE):
    """The file with every number as an exact Decimal of its text."""
    return json.loads(path.read_text(), parse_float=Decimal, parse_int=Decimal)


def models(text):
    """The models of an imported list: {name: {key: value text}}, plus the
    LiteLLM key of its comment as "_litellm"."""
    out = {}
    for m in re.finditer(r'# LiteLLM "([^"]+)"[^\n]*\n(?:  #[^\n]*\n)*  \{ (.*?); \}', text,
                         re.S):
        fields = dict(re.findall(r'(\w+) = ("[^"]*"|\[[^\]]*\]|[^;]+);', m.group(2) + ";"))
        fields = {k: v.strip('"') for k, v in fields.items()}
        fields["_litellm"] = m.group(1)
        out[fields["name"]] = fields
    return out


def nusd(usd_text):
    """A printed USD per Mtok as nano-USD per Mtok, which must be whole."""
    v = Decimal(usd_text) * 10**9
    assert v == v.to_integral_value(), usd_text
    return int(v)


def test_import_prices_exact_to_the_nano_usd():
    r = catalog("import", FIXTURE)
    assert r.returncode == 0, r.stderr
    got = models(r.stdout)
    assert set(got) == {
        "test-gpt-mini", "test-gpt-reasoner", "test-gpt-nano", "test-gpt-fine",
        "test-claude-sonnet-20250101", "test-claude-sonnet-20250101-long", "test-claude-haiku",
        "test-gemini-flash", "test-gemini-pro", "test-gemini-pro-long",
        "vertex_ai-language-models/test-gemini-flash", "eu.test.claude-haiku-v1:0",
        "test.nova-micro-v1:0", "test-local-llama"}, sorted(got)
    data = fixture()
    checked = 0
    for name, m in got.items():
        entry = data[m["_litellm"]]
        tier = name.endswith("-long")
        for lkey, ckey in PRICE_KEYS.items():
            key = lkey + ("_above_200k_tokens" if tier else "")
            exact = entry.get(key)
            if exact is None and tier and not lkey.endswith("_batches"):
                exact = entry.get(lkey)  # a tier price the file lacks is the base price
            if tier and lkey.endswith("_batches"):
                exact = None  # the -long model leaves batch prices to the config
            if exact is not None and exact == 0 and ckey not in (
                    "input_usd_per_mtok", "output_usd_per_mtok") and entry["input_cost_per_token"]:
                exact = None  # a 0 cache price beside a real input price is no price
            if exact is None:
                assert ckey not in m, (name, ckey)
                continue
            want = exact * 10**15  # USD per token -> nano-USD per Mtok
            if name == "test-gpt-fine" and ckey == "input_usd_per_mtok":
                assert want != want.to_integral_value()  # finer than a nano-USD: rounded up
                want = want.to_integral_value(rounding="ROUND_CEILING")
            assert nusd(m[ckey]) == want, (name, ckey, m[ckey], exact)
            checked += 1
        assert m["provider"] == entry["litellm_provider"]
        assert m["quality"] == "0.5" and m["latency_ms"] == "1000"
    assert checked >= 40
    mini = got["test-gpt-mini"]
    assert mini["context_tokens"] == "128000" and mini["max_output_tokens"] == "16384"
    assert mini["capabilities"] == '["json", "json_schema", "tools", "vision", "pdf"]'
    assert re.sub(r"\s+", " ", got["test-gemini-flash"]["capabilities"]) == \
        '["json", "json_schema", "tools", "vision", "pdf", "reasoning", "long_context"]'
    assert got["test-gpt-reasoner"]["max_completion_tokens"] == "true"
    assert got["test-gpt-reasoner"]["default_max_tokens"] == "4096"
    assert got["test-claude-sonnet-20250101"]["context_tokens"] == "200000"
    assert got["test-claude-sonnet-20250101-long"]["context_tokens"] == "1000000"
    assert got["test-claude-haiku"]["capabilities"] == '["tools", "long_context"]'
    assert got["test-gemini-flash"]["id"] == "test-gemini-flash"
    assert got["vertex_ai-language-models/test-gemini-flash"]["id"] == "test-gemini-flash"
    assert got["test-local-llama"]["context_tokens"] == "131072"
    assert "both prices are 0" in r.stdout.lower()
    assert "# LiteLLM \"test-claude-sonnet-20250101\" (anthropic)\n" \
        "  # LiteLLM's deprecation_date: 2027-01-01\n" in r.stdout
    assert "14 models from 12 chat entries (25 entries; 0 of other providers, 5 not chat " \
        "models, 7 skipped with a warning)" in r.stderr


def test_import_warns_naming_entry_and_field():
    r = catalog("import", FIXTURE)
    text = FIXTURE.read_text().splitlines()

    def line(key):
        return next(i for i, t in enumerate(text, 1) if t.strip().startswith(f'"{key}"'))

    for key, field, why in [
            ("test-bad-price", "input_cost_per_token", "not a number"),
            ("test-bad-negative", "output_cost_per_token", "negative price"),
            ("test-bad-huge", "input_cost_per_token", "price beyond the money bounds"),
            ("test-bad-flag", "supports_vision", "not true or false"),
            ("test-bad-context", "max_input_tokens", "not a whole number of tokens"),
            ("test-no-prices", "input_cost_per_token", "missing")]:
        assert f'{FIXTURE}:{line(key)}: "{key}": {field}: {why}' in r.stderr, (key, r.stderr)
    assert f'{FIXTURE}:{line("test-not-an-object")}: "test-not-an-object": not an object' \
        in r.stderr
    assert f'"test-gpt-fine": input_cost_per_token: finer than a nano-USD per million tokens: ' \
        f'rounded up to $0.100000001/Mtok' in r.stderr


def test_providers_filter_and_rename():
    r = catalog("import", FIXTURE, "--providers",
                "openai,anthropic=claude,gemini,vertex_ai-language-models=vertex")
    assert r.returncode == 0, r.stderr
    got = models(r.stdout)
    assert {m["provider"] for m in got.values()} == {"openai", "claude", "gemini", "vertex"}
    assert got["test-claude-haiku"]["provider"] == "claude"
    assert got["test-gemini-flash"]["provider"] == "gemini"
    assert got["vertex/test-gemini-flash"]["provider"] == "vertex"  # the name was taken
    assert not any(m["provider"].startswith("bedrock") for m in got.values())
    assert "# The providers these models need: openai, claude, gemini, vertex." in r.stdout

    r = catalog("import", FIXTURE, "--providers", "vertex_ai-language-models")
    assert set(models(r.stdout)) == {"test-gemini-flash"}  # nothing took the name first

    # Both Bedrock routes of LiteLLM as one provider; region-specific keys are left out.
    r = catalog("import", FIXTURE, "--providers", "bedrock=aws,bedrock_converse=aws")
    got = models(r.stdout)
    assert set(got) == {"eu.test.claude-haiku-v1:0", "test.nova-micro-v1:0"}
    assert {m["provider"] for m in got.values()} == {"aws"}

    r = catalog("import", FIXTURE, "--providers", "openai,nosuch")
    assert r.returncode == 0 and 'no chat model of litellm_provider "nosuch"' in r.stderr
    r = catalog("import", FIXTURE, "--providers", "nosuch")
    assert r.returncode == 1 and "nothing to import" in r.stderr and r.stdout == ""


def provider(name, type_, batch=False):
    return {"name": name, "type": type_, "base_url": "http://127.0.0.1:1/v1", "api_key_env": "",
            "batch": batch}


def test_check_zero_on_the_import_and_lists_each_difference(tmpdir):
    tmp = Path(tmpdir)
    r = catalog("import", FIXTURE, "--providers", "openai,anthropic,gemini")
    assert r.returncode == 0, r.stderr
    cfg = tmp / "imported.cfg"
    cfg.write_text('providers = (\n'
                   '  { name = "openai"; type = "openai"; base_url = "http://h/v1"; batch = true; },\n'
                   '  { name = "anthropic"; type = "anthropic"; base_url = "http://h/v1"; },\n'
                   '  { name = "gemini"; type = "gemini"; base_url = "http://h/v1beta"; '
                   'batch = true; }\n);\n' + r.stdout)
    r = catalog("check", "-c", cfg, FIXTURE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"10 models checked against {FIXTURE}: 0 prices differ, 0 models not in the file" \
        in r.stdout

    def m(name, prov, id_, **prices):
        return dict({"name": name, "provider": prov, "id": id_}, **prices)

    edited = {
        "providers": [provider("openai", "openai", batch=True), provider("anthropic", "anthropic"),
                      provider("g", "gemini", batch=True), provider("nobatch", "openai")],
        "models": [
            # input differs; cached and batch as in the file
            m("mini", "openai", "test-gpt-mini", input_usd_per_mtok=0.16,
              cached_input_usd_per_mtok=0.075, output_usd_per_mtok=0.6,
              batch_input_usd_per_mtok=0.075, batch_output_usd_per_mtok=0.3),
            # cached differs by one nano-USD per Mtok; cache write left out: priced as input
            m("haiku", "anthropic", "test-claude-haiku", input_usd_per_mtok=1.0,
              cached_input_usd_per_mtok=0.100000001, output_usd_per_mtok=5.0),
            # batch output differs; batch input left to the default (half of 0.3)
            m("flash", "g", "test-gemini-flash", input_usd_per_mtok=0.3,
              cached_input_usd_per_mtok=0.03, output_usd_per_mtok=2.5,
              batch_output_usd_per_mtok=1.3),
            # a context above the tier: compared with the tier's prices
            m("pro", "g", "test-gemini-pro", input_usd_per_mtok=1.25,
              cached_input_usd_per_mtok=0.125, output_usd_per_mtok=10.0,
              context_tokens=1048576),
            # no batch on this provider: batch prices are not compared
            m("nano", "nobatch", "test-gpt-nano", input_usd_per_mtok=0.05,
              cached_input_usd_per_mtok=0.005, output_usd_per_mtok=0.4),
            # found by its name when its id is not in the file
            m("test-gpt-reasoner", "openai", "my-deployment", input_usd_per_mtok=1.1,
              cached_input_usd_per_mtok=0.275, output_usd_per_mtok=4.4),
            m("gone", "openai", "no-such-model", input_usd_per_mtok=1.0),
        ],
        "budgets": [{"name": "default", "limit_usd": 1.0}],
    }
    write_config(tmp / "edited.cfg", edited)
    r = catalog("check", "-c", tmp / "edited.cfg", FIXTURE)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    want = [
        'mini: input_usd_per_mtok: config $0.16, file $0.15 (LiteLLM "test-gpt-mini")',
        'haiku: cached_input_usd_per_mtok: config $0.100000001, file $0.1 '
        '(LiteLLM "test-claude-haiku")',
        'haiku: cache_write_usd_per_mtok: config $1, file $1.25 (LiteLLM "test-claude-haiku")',
        'flash: batch_output_usd_per_mtok: config $1.3, file $1.25 '
        '(LiteLLM "gemini/test-gemini-flash")',
        'pro: input_usd_per_mtok: config $1.25, file $2.5 (LiteLLM "gemini/test-gemini-pro")',
        'pro: cached_input_usd_per_mtok: config $0.125, file $0.25 '
        '(LiteLLM "gemini/test-gemini-pro")',
        'pro: output_usd_per_mtok: config $10, file $15 (LiteLLM "gemini/test-gemini-pro")',
        f'gone: not in {FIXTURE} (id "no-such-model")',
        f"6 models checked against {FIXTURE}: 7 prices differ, 1 model not in the file",
    ]
    assert lines == want, "\n".join(lines)

    # Only a model that is not in the file: listed, no failure.
    write_config(tmp / "gone.cfg", {"providers": [provider("openai", "openai")],
                                    "models": [m("gone", "openai", "no-such-model")],
                                    "budgets": [{"name": "default", "limit_usd": 1.0}]})
    r = catalog("check", "-c", tmp / "gone.cfg", FIXTURE)
    assert r.returncode == 0 and "1 model not in the file" in r.stdout, r.stdout


def test_malformed_files(tmpdir):
    tmp = Path(tmpdir)
    cut = tmp / "cut.json"
    cut.write_text(FIXTURE.read_text()[:900])
    r = catalog("import", cut)
    assert r.returncode == 1 and r.stdout == ""
    assert re.search(rf"^promptyard catalog: {re.escape(str(cut))}:\d+:\d+: ", r.stderr, re.M), \
        r.stderr
    bad = tmp / "bad.json"
    bad.write_text('{\n  "a": {"mode": "chat",}\n}\n')
    r = catalog("import", bad)
    assert r.returncode == 1 and f"{bad}:2:" in r.stderr, r.stderr
    arr = tmp / "array.json"
    arr.write_text("[1, 2]")
    r = catalog("import", arr)
    assert r.returncode == 1 and f"{arr}:1:1: the top level is not an object" in r.stderr
    r = catalog("import", tmp / "missing.json")
    assert r.returncode == 1 and "cannot read: No such file or directory" in r.stderr
    write_config(tmp / "ok.cfg", {"providers": [provider("openai", "openai")], "models": [],
                                  "budgets": [{"name": "default", "limit_usd": 1.0}]})
    r = catalog("check", "-c", tmp / "ok.cfg", bad)
    assert r.returncode == 1 and f"{bad}:2:" in r.stderr
    # The file from stdin.
    p = subprocess.run([bin_path("promptyard"), "catalog", "import", "-"],
                       input=FIXTURE.read_text(), capture_output=True, text=True, timeout=60,
                       env=child_env())
    assert p.returncode == 0 and "test-gpt-mini" in p.stdout


def test_usage_errors(tmpdir):
    for args, why in [((), "expected import or check"),
                      (("frob",), 'unknown command "frob"'),
                      (("import",), "expected one FILE"),
                      (("import", FIXTURE, "--providers", "openai,,gemini"), "--providers:"),
                      (("import", FIXTURE, "--providers", "a b"), "--providers:"),
                      (("import", "-c", "x.cfg", FIXTURE), "-c is for catalog check"),
                      (("check", FIXTURE), "-c FILE is required"),
                      (("check", "-c", Path(tmpdir) / "none.cfg", FIXTURE), "none.cfg"),
                      (("check", "-c", "x.cfg", "--providers", "openai", FIXTURE),
                       "--providers is for catalog import"),
                      (("import", "--bogus", FIXTURE), "usage:")]:
        r = catalog(*args)
        assert r.returncode == 2 and why in r.stderr, (args, r.returncode, r.stderr)
    r = catalog("--help")
    assert r.returncode == 0 and "catalog check -c CFG FILE" in r.stdout
    assert "litellm_provider" in r.stdout and "200000" in r.stdout
    r = subprocess.run([bin_path("promptyard"), "--help"], capture_output=True, text=True,
                       timeout=30, env=child_env())
    assert "catalog" in r.stdout


def test_deploy_models_match_their_litellm_source(tmpdir):
    """deploy/models.cfg was imported from the upstream excerpt and edited by
    hand (names, quality, latency): its prices must still be LiteLLM's."""
    cfg = Path(tmpdir) / "models_check.cfg"
    shutil.copy(REPO / "deploy" / "models.cfg", Path(tmpdir) / "models.cfg")  # read beside it
    cfg.write_text('@include "models.cfg"\n'
                   'budgets = ( { name = "default"; limit_usd = 1.0; } );\n')
    r = catalog("check", "-c", cfg, UPSTREAM)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^\d+ models checked against .*: 0 prices differ, 0 models not in the "
                     r"file$", r.stdout, re.M), r.stdout
    assert int(r.stdout.split()[0]) >= 30
    # The excerpt itself imports cleanly: every entry a model or left out on purpose.
    r = catalog("import", UPSTREAM)
    assert r.returncode == 0 and "skipped with a warning" in r.stderr
