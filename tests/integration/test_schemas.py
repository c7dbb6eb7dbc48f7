"""test_schemas: the JSON Schemas of schemas/ are valid draft 2020-12, accept
the SPEC's examples and refuse the mistakes they exist to catch.

Plain test_* functions (the runner calls them); also runnable by itself:
    /usr/bin/python3 tests/integration/test_schemas.py
"""

import copy
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import schemas  # noqa: E402

# SPEC §3, verbatim.
SPEC_RESULT = json.loads("""
{"id":"doc-42","status":"ok","content":"...","finish_reason":"stop",
 "model":"gpt-4o-mini","provider":"openai",
 "usage":{"input_tokens":812,"output_tokens":96,"cached_input_tokens":0},
 "cost_usd":0.0001794,"budget":"nightly",
 "attempts":[{"model":"claude-haiku","provider":"anthropic","outcome":"http_529",
              "http_status":529,"latency_ms":140,"cost_usd":0},
             {"model":"gpt-4o-mini","provider":"openai","outcome":"ok",
              "http_status":200,"latency_ms":930,"cost_usd":0.0001794}],
 "latency_ms":1102,"metadata":{},"worker":"host-1234",
 "completed_at":"2026-11-22T03:00:00.123Z"}
""")

# SPEC §4, verbatim.
SPEC_COST = json.loads("""
{"job_id":"doc-42","attempt":2,"provider":"openai","model":"gpt-4o-mini",
 "budget":"nightly","input_tokens":812,"output_tokens":96,"cached_input_tokens":0,
 "cost_nusd":179400,"cost_usd":0.0001794,"estimated":false,
 "ts":"2026-11-22T03:00:00.120Z"}
""")

ERROR_RESULT = {
    "id": "llm.jobs:3:1207", "status": "error",
    "error": {"code": "invalid_job", "message": "id: must be a string of 1 to 200 bytes"},
    "cost_usd": 0, "attempts": [], "latency_ms": 0, "worker": "host-1234",
    "completed_at": "2026-11-22T03:00:00.123Z",
}

FAILED_RESULT = {
    "id": "doc-7", "status": "error",
    "error": {"code": "providers_failed", "message": "4 attempts failed"},
    "model": "gpt-4o-mini", "provider": "openai", "budget": "nightly",
    "cost_usd": 0,
    "attempts": [{"model": "gpt-4o-mini", "provider": "openai", "outcome": "timeout",
                  "latency_ms": 120000, "cost_usd": 0},
                 {"model": "claude-haiku", "provider": "anthropic",
                  "outcome": "circuit_open", "latency_ms": 0, "cost_usd": 0}],
    "latency_ms": 120210, "metadata": {"task": "summarize"}, "worker": "host-1234",
    "completed_at": "2026-11-22T03:02:00+01:00",
}

DLQ_PARSED = {
    "job": {"id": "doc-9", "prompt": "hi", "budget": "x"},
    "error": {"code": "invalid_job", "message": "budget: unknown budget \"x\""},
    "source": {"topic": "llm.jobs", "partition": 0, "offset": 42},
    "failed_at": "2026-11-22T03:00:00.123Z",
}

DLQ_RAW = {
    "id": "llm.jobs:1:7",
    "job": "{\"id\":\"doc-9\",",
    "error": {"code": "invalid_job",
              "message": "value: invalid JSON: string or '}' expected near end of file "
                         "at line 1 column 10"},
    "source": {"topic": "llm.jobs", "partition": 1, "offset": 7},
    "failed_at": "2026-11-22T03:00:00Z",
}

FULL_JOB = {
    "id": "doc-42",
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Summarise: ...", "name": "ignored"}],
    "model": "gpt-4o-mini", "models": ["gpt-4o-mini", "claude-haiku"],
    "allow_fallbacks": True, "strategy": "cheapest", "max_cost_usd": 0.01,
    "budget": "nightly", "max_tokens": 256, "temperature": 0.2, "top_p": 1,
    "stop": ["\n\n"], "response_format": {"type": "json_object"},
    "capabilities": ["json", "long_context"], "deadline": "2026-11-22T03:00:00Z",
    "metadata": {"task": "summarize"}, "some_future_field": [1, 2, 3],
}


def with_(obj, **changes):
    """A deep copy of obj with fields set (a value of DELETE removes the field)."""
    out = copy.deepcopy(obj)
    for k, v in changes.items():
        if v is DELETE:
            out.pop(k, None)
        else:
            out[k] = v
    return out


DELETE = object()


def rejected(kind, obj, expect=None):
    """obj must fail validation; expect, if given, must appear in the report."""
    try:
        schemas.validate(kind, obj)
    except AssertionError as e:
        if expect is not None:
            assert expect in str(e), "%r not in report: %s" % (expect, e)
        return str(e)
    raise AssertionError("%s accepted but should not be: %s" % (kind, json.dumps(obj)))


# ---------------------------------------------------------------- the schemas themselves

def test_schemas_are_valid_2020_12():
    for kind in schemas.KINDS:
        schemas.check_schema(kind)
        s = schemas.schema(kind)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema", kind
        assert s["$id"] == "https://promptyard.dev/schemas/%s.schema.json" % kind, kind
        assert s.get("description"), kind


def test_every_property_is_described():
    # Field definitions only: properties, items and $defs, not the if/then
    # sub-schemas that merely constrain fields defined elsewhere.
    def walk(node, where):
        if not isinstance(node, dict):
            return
        for name, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and "$ref" not in sub:
                assert sub.get("description"), "%s.%s has no description" % (where, name)
            walk(sub, "%s.%s" % (where, name))
        walk(node.get("items"), where + "[]")
        for name, sub in node.get("$defs", {}).items():
            walk(sub, "%s#%s" % (where, name))
    for kind in schemas.KINDS:
        walk(schemas.schema(kind), kind)


def test_outputs_are_closed():
    for kind in ("result", "cost", "dlq"):
        assert schemas.schema(kind)["additionalProperties"] is False, kind
    assert "additionalProperties" not in schemas.schema("job")  # unknown fields are ignored


def test_error_codes_agree():
    r = schemas.schema("result")["$defs"]["error"]["properties"]["code"]["enum"]
    d = schemas.schema("dlq")["properties"]["error"]["properties"]["code"]["enum"]
    assert r == d
    assert sorted(r) == sorted(["invalid_job", "no_eligible_model", "cost_cap_exceeded",
                                "budget_exhausted", "providers_failed", "provider_rejected",
                                "expired"])


def test_date_time_format():
    for good in ("2026-11-22T03:00:00Z", "2026-11-22T03:00:00.123Z", "2026-11-22t03:00:00z",
                 "2026-11-22T03:00:00+01:00", "2026-12-31T23:59:60Z", "2024-02-29T00:00:00Z"):
        assert schemas.is_rfc3339(good), good
    for bad in ("2026-11-22", "2026-11-22T03:00:00", "2026-11-22 03:00:00Z",
                "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-22T24:00:00Z",
                "2026-11-22T03:00:00+25:00", "1700000000", "", "2026-11-22T03:00Z"):
        assert not schemas.is_rfc3339(bad), bad


# ---------------------------------------------------------------- what must pass

def test_spec_result_example():
    schemas.validate("result", SPEC_RESULT)


def test_rich_result():
    """A result of SPEC §13/§14: parsed, tool_calls, refusal, usage additions, batch attempts."""
    rich = with_(SPEC_RESULT, parsed={"total": 12.5},
                 tool_calls=[{"id": "call_1", "name": "lookup", "arguments": "{}"}],
                 finish_reason="tool_calls",
                 usage={"input_tokens": 812, "output_tokens": 96, "cached_input_tokens": 0,
                        "reasoning_tokens": 40, "cache_write_tokens": 0},
                 attempts=[{"model": "gpt-4o-mini", "provider": "openai", "outcome": "ok",
                            "http_status": 200, "latency_ms": 930, "cost_usd": 0.0001794,
                            "mode": "batch", "batch_id": "batch_1"},
                           {"model": "gpt-4o-mini", "provider": "openai",
                            "outcome": "invalid_output", "latency_ms": 930, "cost_usd": 0,
                            "mode": "sync"}])
    schemas.validate("result", rich)
    schemas.validate("result", with_(SPEC_RESULT, refusal="No.", finish_reason="refusal"))
    rejected("result", with_(ERROR_RESULT, parsed={}), "$.parsed: False schema")
    rejected("result", with_(SPEC_RESULT, tool_calls=[{"id": "c", "name": "f"}]),
             "'arguments' is a required property")
    rejected("result", with_(rich, attempts=[{"model": "m", "provider": "p", "outcome": "ok",
                                              "latency_ms": 1, "cost_usd": 0, "mode": "later"}]),
             "mode")
    schemas.validate("cost", with_(SPEC_COST, mode="batch"))
    rejected("cost", with_(SPEC_COST, mode="async"), "$.mode")


def test_spec_cost_example():
    schemas.validate("cost", SPEC_COST)
    schemas.validate("cost", with_(SPEC_COST, attempt=0, estimated=True, cost_nusd=0,
                                   cost_usd=0, input_tokens=0, output_tokens=0))


def test_error_results():
    schemas.validate("result", ERROR_RESULT)
    schemas.validate("result", FAILED_RESULT)
    for code in schemas.schema("result")["$defs"]["error"]["properties"]["code"]["enum"]:
        schemas.validate("result", with_(ERROR_RESULT, error={"code": code, "message": "m"}))


def test_outcomes():
    for outcome in ("ok", "http_200", "http_429", "http_529", "timeout", "connect_error",
                    "invalid_response", "rate_limited", "circuit_open"):
        r = copy.deepcopy(SPEC_RESULT)
        r["attempts"][0]["outcome"] = outcome
        schemas.validate("result", r)


def test_dlq_records():
    schemas.validate("dlq", DLQ_PARSED)
    schemas.validate("dlq", DLQ_RAW)
    schemas.validate("dlq", with_(DLQ_RAW, job="42"))  # JSON that is not an object
    schemas.validate("dlq", with_(DLQ_RAW, job="{\"id\":\"\ufffd\"}",
                                  job_base64="eyJpZCI6Iv8ifQ=="))


# A job of SPEC §13 and §14: parts, a tool conversation, a schema, reasoning, batch.
RICH_JOB = {
    "id": "rich-1",
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "Extract the fields."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "This invoice:"},
            {"type": "image", "url": "https://example.com/scan.png"},
            {"type": "image", "data": "iVBORw0KGgo=", "media_type": "image/png"},
            {"type": "document", "data": "JVBERi0xLjQK", "media_type": "application/pdf"},
            {"type": "document", "url": "https://example.com/a.pdf"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                                "detail": "low"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQK",
                                      "filename": "a.pdf"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup_vendor", "arguments": "{\"name\": \"ACME\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"vat\": \"FR123\"}"},
    ],
    "tools": [{"type": "function", "function": {
        "name": "lookup_vendor", "description": "Finds a vendor.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}}}}],
    "tool_choice": "auto",
    "response_format": {"type": "json_schema", "json_schema": {
        "name": "invoice", "strict": True,
        "schema": {"type": "object", "properties": {"total": {"type": "number"}},
                   "required": ["total"], "additionalProperties": False}}},
    "reasoning_effort": "low",
    "capabilities": ["vision", "pdf", "tools", "json_schema", "reasoning"],
    "mode": "auto",
    "complete_by": "2026-12-06T07:00:00Z",
}


def test_jobs():
    schemas.validate("job", {"id": "a", "prompt": "Hello"})
    schemas.validate("job", {"id": "a", "prompt": ""})
    schemas.validate("job", FULL_JOB)
    schemas.validate("job", with_(FULL_JOB, stop="END", response_format={"type": "text"}))
    schemas.validate("job", json.dumps({"id": "a", "prompt": "from text"}))
    schemas.validate("job", RICH_JOB)
    schemas.validate("job", json.dumps({"id": "a", "prompt": "from bytes"}).encode())


# ---------------------------------------------------------------- what must fail

def test_results_rejected():
    ok = SPEC_RESULT
    err = ERROR_RESULT
    rejected("result", with_(err, content="partial"), "$.content: False schema")
    rejected("result", with_(ok, error={"code": "invalid_job", "message": "m"}))
    rejected("result", with_(ok, content=DELETE), "'content' is a required property")
    rejected("result", with_(err, error=DELETE), "'error' is a required property")
    rejected("result", with_(err, error={"code": "oops", "message": "m"}), "$.error.code")
    rejected("result", with_(err, error={"code": "expired"}), "'message' is a required")
    rejected("result", with_(err, error={"code": "expired", "message": "m", "x": 1}))
    rejected("result", with_(ok, id=DELETE), "'id' is a required property")
    rejected("result", with_(ok, id=""))
    rejected("result", with_(ok, status="failed"), "$.status")
    rejected("result", with_(ok, cost_usd=-0.1), "$.cost_usd")
    rejected("result", with_(ok, cost_usd="0.1"), "$.cost_usd")
    rejected("result", with_(ok, finish_reason="done"), "$.finish_reason")
    rejected("result", with_(ok, completed_at="yesterday"), "$.completed_at")
    rejected("result", with_(ok, completed_at="2026-11-22 03:00:00"), "$.completed_at")
    rejected("result", with_(ok, key="doc-42"), "Additional properties")
    rejected("result", with_(ok, usage={"input_tokens": -1, "output_tokens": 0,
                                        "cached_input_tokens": 0}), "$.usage.input_tokens")
    rejected("result", with_(ok, usage={"input_tokens": 1.5, "output_tokens": 0,
                                        "cached_input_tokens": 0}), "$.usage.input_tokens")
    rejected("result", with_(ok, usage={"input_tokens": 1, "output_tokens": 1}),
             "cached_input_tokens")
    rejected("result", with_(ok, metadata=[]), "$.metadata")
    for outcome in ("http_5xx", "http_2000", "HTTP_500", "ok ", "error", "http_"):
        r = copy.deepcopy(ok)
        r["attempts"][1]["outcome"] = outcome
        rejected("result", r, "$.attempts[1].outcome")
    r = copy.deepcopy(ok)
    del r["attempts"][0]["cost_usd"]
    rejected("result", r, "$.attempts[0]")
    r = copy.deepcopy(ok)
    r["attempts"][0]["http_status"] = 42
    rejected("result", r, "$.attempts[0].http_status")


def test_costs_rejected():
    rejected("cost", with_(SPEC_COST, cost_nusd=-1), "$.cost_nusd")
    rejected("cost", with_(SPEC_COST, cost_nusd=179400.5), "$.cost_nusd")
    rejected("cost", with_(SPEC_COST, cost_nusd=179400.0), "$.cost_nusd")  # JSON integer only
    rejected("cost", with_(SPEC_COST, cost_nusd="179400"), "$.cost_nusd")
    rejected("cost", with_(SPEC_COST, job_id=DELETE), "'job_id' is a required property")
    rejected("cost", with_(SPEC_COST, attempt=-1), "$.attempt")
    rejected("cost", with_(SPEC_COST, estimated="false"), "$.estimated")
    rejected("cost", with_(SPEC_COST, estimated=0), "$.estimated")
    rejected("cost", with_(SPEC_COST, ts="2026-11-22T03:00:00.120"), "$.ts")
    rejected("cost", with_(SPEC_COST, cost_usd=-0.0001), "$.cost_usd")
    rejected("cost", with_(SPEC_COST, output_tokens=True), "$.output_tokens")
    rejected("cost", with_(SPEC_COST, nusd=179400), "Additional properties")


def test_dlq_rejected():
    rejected("dlq", with_(DLQ_PARSED, job=42), "$.job")
    rejected("dlq", with_(DLQ_PARSED, job=None), "$.job")
    rejected("dlq", with_(DLQ_PARSED, job=DELETE), "'job' is a required property")
    rejected("dlq", with_(DLQ_PARSED, failed_at=DELETE), "'failed_at' is a required property")
    rejected("dlq", with_(DLQ_PARSED, error={"code": "oops", "message": "m"}), "$.error.code")
    rejected("dlq", with_(DLQ_PARSED, source={"topic": "t", "partition": -1, "offset": 0}),
             "$.source.partition")
    rejected("dlq", with_(DLQ_PARSED, source={"topic": "t", "partition": 0}),
             "'offset' is a required property")
    rejected("dlq", with_(DLQ_PARSED, headers={}), "Additional properties")
    rejected("dlq", with_(DLQ_PARSED, job_base64="eyJpZCI6Iv8ifQ=="), "$.job")
    rejected("dlq", with_(DLQ_RAW, job_base64="not base64!"), "$.job_base64")
    rejected("dlq", with_(DLQ_RAW, error={"code": "invalid_job", "message": ""}),
             "$.error.message")


def test_jobs_rejected():
    j = {"id": "a", "prompt": "p"}
    msgs = [{"role": "user", "content": "c"}]
    rejected("job", {"prompt": "p"}, "'id' is a required property")
    rejected("job", with_(j, id=""), "$.id")
    rejected("job", with_(j, id="x" * 201), "$.id")
    rejected("job", with_(j, id=42), "$.id")
    rejected("job", {"id": "a"})                              # neither
    rejected("job", with_(j, messages=msgs))                  # both
    rejected("job", with_(j, prompt=None), "$.prompt")         # null is not absent
    rejected("job", {"id": "a", "messages": []}, "$.messages")
    rejected("job", {"id": "a", "messages": ["hi"]}, "$.messages[0]")
    rejected("job", {"id": "a", "messages": [{"role": "tool", "content": "c"}]},
             "'tool_call_id' is a required property")
    rejected("job", {"id": "a", "messages": [{"role": "robot", "content": "c"}]},
             "$.messages[0].role")
    rejected("job", {"id": "a", "messages": [{"role": "user", "content": [
        {"type": "image", "data": "AAAA"}]}]}, "$.messages[0].content")
    rejected("job", {"id": "a", "prompt": "p", "tool_choice": "auto"}, "'tools' is a dependency")
    rejected("job", {"id": "a", "prompt": "p", "mode": "later"}, "$.mode")
    rejected("job", {"id": "a", "messages": [{"role": "user"}]}, "'content' is a required")
    rejected("job", with_(j, models=[]), "$.models")
    rejected("job", with_(j, strategy="smartest"), "$.strategy")
    rejected("job", with_(j, max_cost_usd=0), "$.max_cost_usd")
    rejected("job", with_(j, max_cost_usd=-1), "$.max_cost_usd")
    rejected("job", with_(j, max_cost_usd="1"), "$.max_cost_usd")
    rejected("job", with_(j, max_tokens=0), "$.max_tokens")
    rejected("job", with_(j, max_tokens=1000001), "$.max_tokens")
    rejected("job", with_(j, max_tokens=5.5), "$.max_tokens")
    rejected("job", with_(j, max_tokens=5.0), "$.max_tokens")
    rejected("job", with_(j, max_tokens="10"), "$.max_tokens")
    rejected("job", with_(j, temperature=2.5), "$.temperature")
    rejected("job", with_(j, stop=["a", 1]), "$.stop")
    rejected("job", with_(j, response_format={"type": "xml"}), "$.response_format.type")
    rejected("job", with_(j, capabilities=["telepathy"]), "$.capabilities[0]")
    rejected("job", with_(j, deadline="tomorrow"), "$.deadline")
    rejected("job", with_(j, metadata="x"), "$.metadata")
    rejected("job", [j], "$: ")
    rejected("job", b"{\"id\":", "not JSON")


def main():
    tests = [(name, fn) for name, fn in sorted(globals().items())
             if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
        else:
            passed += 1
            print("PASS %s" % name)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
