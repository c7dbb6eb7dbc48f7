"""The fake provider's rich jobs (SPEC §13) in its three wire formats, with
raw requests: content parts and their usage, JSON Schema answers and the
share of them broken on purpose, tool calls and tool-result follow-ups,
refusals, thinking usage, Anthropic cache writes, the files of /_files/,
and the 400s a real API gives for malformed parts, tools and budgets."""
import base64
import json
import math
import re

import jsonschema

from tests.lib.stack import FakeProvider, http

TIMEOUT = 120

OA = "/oa/v1/chat/completions"
AN = "/an/v1/messages"
AN_HDRS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def GE(model="gemini-x"):
    return f"/ge/v1beta/models/{model}:generateContent"


def post(fp, path, body, headers=None):
    """(status, parsed JSON) of one API call."""
    hdrs = dict(AN_HDRS if path == AN else {}, **(headers or {}))
    status, data = http("POST", fp.url(path), body, headers=hdrs)
    return status, json.loads(data)


def ok(fp, path, body, headers=None):
    status, out = post(fp, path, body, headers)
    assert status == 200, out
    return out


def last(fp):
    return fp.requests()[-1]


def fetch(fp, name):
    status, data = http("GET", fp.url("/_files/" + name))
    assert status == 200, (name, data[:200])
    return data


def b64(data):
    return base64.b64encode(data).decode()


def text_tokens(*texts):
    """The fake's text rule: ceil(bytes / 4) + 3 per message."""
    return math.ceil(sum(len(t.encode()) for t in texts) / 4) + 3 * len(texts)


def worker_estimate(*texts, images=0, pages=0):
    """The worker's est_input with the default image_tokens and
    pdf_page_tokens (SPEC §6, §13)."""
    return (math.ceil(sum(len(t.encode()) for t in texts) / 3) + 4 * len(texts) + 3
            + 1600 * images + 3000 * pages)


def oa_text(out):
    return out["choices"][0]["message"]["content"]


def an_blocks(out, kind):
    return [b for b in out["content"] if b["type"] == kind]


def ge_parts(out):
    return out["candidates"][0]["content"]["parts"]


def ge_answer_parts(out):
    return [p for p in ge_parts(out) if not p.get("thought")]


# A schema that uses the whole subset SPEC §13 names.
RICH_SCHEMA = {
    "type": "object",
    "properties": {
        "invoice": {"type": "string", "pattern": "^INV-[0-9]{4}$"},
        "total": {"type": "number", "minimum": 10.5, "maximum": 99},
        "count": {"type": "integer", "minimum": 3},
        "currency": {"enum": ["EUR", "USD"]},
        "kind": {"const": "invoice"},
        "code": {"type": "string", "minLength": 6, "maxLength": 8},
        "issued": {"type": "string", "format": "date"},
        "lines": {"type": "array", "minItems": 2, "maxItems": 5,
                  "items": {"$ref": "#/$defs/line"}},
        "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        "party": {"$ref": "#/definitions/party"},
        "flags": {"type": ["boolean", "null"]},
    },
    "required": ["invoice", "total", "count", "currency", "kind", "code", "issued", "lines",
                 "note", "party", "flags"],
    "additionalProperties": False,
    "$defs": {"line": {"type": "object",
                       "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{2}\\d+(-[a-z]+)?$"},
                                      "qty": {"type": "integer", "minimum": 1, "maximum": 9}},
                       "required": ["sku", "qty"], "additionalProperties": False}},
    "definitions": {"party": {"type": "object", "properties": {"name": {"type": "string"}},
                              "required": ["name"], "additionalProperties": False}},
}

# What Anthropic's structured outputs take: objects closed, no bounds.
ANTHROPIC_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                   "tags": {"type": "array", "items": {"type": "string"}},
                   "kind": {"enum": ["a", "b"]},
                   "addr": {"$ref": "#/$defs/addr"}},
    "required": ["name", "age", "tags", "kind", "addr"],
    "additionalProperties": False,
    "$defs": {"addr": {"type": "object", "properties": {"zip": {"type": "string"}},
                       "required": ["zip"], "additionalProperties": False}},
}

WEATHER = {"type": "object",
           "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
           "required": ["city", "days"], "additionalProperties": False}


def oa_schema_body(schema, text="extract it", strict=True, **kw):
    return {"model": "gpt-x", "messages": [{"role": "user", "content": text}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "answer", "schema": schema,
                                                "strict": strict}}, **kw}


def an_body(content="hello", **kw):
    return {"model": "claude-x", "max_tokens": 500,
            "messages": [{"role": "user", "content": content}], **kw}


def ge_body(parts=None, **kw):
    return {"contents": [{"role": "user", "parts": parts or [{"text": "hello"}]}], **kw}


# ---------------------------------------------------------------- parts and usage

def test_fake_rich_parts_openai_usage_counts_images_and_pages():
    fp = FakeProvider()
    png, pdf = fetch(fp, "tiny.png"), fetch(fp, "pages-3.pdf")
    text = "what is in these?"
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png)}},
        {"type": "file", "file": {"filename": "a.pdf",
                                  "file_data": "data:application/pdf;base64," + b64(pdf)}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]}
    out = ok(fp, OA, body)
    want = text_tokens(text) + 2 * 1000 + 3 * 1500
    assert out["usage"]["prompt_tokens"] == want
    assert want <= worker_estimate(text, images=2, pages=3)
    entry = last(fp)
    assert (entry["images"], entry["pdf_pages"], entry["input_tokens"]) == (2, 3, want)

    # a rule sets the tokens an image and a page cost
    fp.set_rules([{"image_tokens": 85, "pdf_page_tokens": 258}])
    out = ok(fp, OA, body)
    assert out["usage"]["prompt_tokens"] == text_tokens(text) + 2 * 85 + 3 * 258


def test_fake_rich_parts_anthropic_usage_counts_images_and_pages():
    fp = FakeProvider()
    png, jpg, pdf = fetch(fp, "tiny.png"), fetch(fp, "tiny.jpg"), fetch(fp, "pages-2.pdf")
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(png)}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": b64(jpg)}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/x.gif"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": b64(pdf)}, "title": "two pages"},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/x.pdf"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "plain doc"}},
        {"type": "text", "text": "describe"}]
    out = ok(fp, AN, an_body(content, system="be brief"))
    # a PDF by URL has no pages the fake can see, as the worker's estimate has none
    want = text_tokens("be brief", "plain doc" + "describe") + 3 * 1000 + 2 * 1500
    assert out["usage"]["input_tokens"] == want
    assert want <= worker_estimate("be brief", "plain doc" + "describe", images=3, pages=2)
    assert (last(fp)["images"], last(fp)["pdf_pages"]) == (3, 2)


def test_fake_rich_parts_gemini_usage_counts_images_and_pages():
    fp = FakeProvider()
    webp, pdf = fetch(fp, "tiny.webp"), fetch(fp, "pages-4.pdf")
    parts = [{"text": "look"},
             {"inlineData": {"mimeType": "image/webp", "data": b64(webp)}},
             # Google's bytes take URL-safe base64 without padding too, and snake_case
             {"inline_data": {"mime_type": "application/pdf",
                              "data": base64.urlsafe_b64encode(pdf).decode().rstrip("=")}},
             {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png"}}]
    out = ok(fp, GE(), ge_body(parts))
    want = text_tokens("look") + 2 * 1000 + 4 * 1500
    assert out["usageMetadata"]["promptTokenCount"] == want
    assert want <= worker_estimate("look", images=2, pages=4)


# ---------------------------------------------------------------- malformed requests

def _png():
    return b64(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="))


def _oa(content=None, **kw):
    msgs = kw.pop("messages", None) or [{"role": "user", "content": content or "hi"}]
    return {"model": "gpt-x", "messages": msgs, **kw}


def _an_img(media_type, data):
    return an_body([{"type": "image", "source": {"type": "base64", "media_type": media_type,
                                                 "data": data}},
                    {"type": "text", "text": "what?"}])


_TOOL_CALL = {"id": "call_1", "type": "function",
              "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}
_OA_TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}]
_AN_TOOLS = [{"name": "weather", "input_schema": WEATHER}]
_GE_TOOLS = [{"functionDeclarations": [{"name": "weather", "parametersJsonSchema": WEATHER}]}]

MALFORMED = [
    # OpenAI
    ("oa image data url not base64", OA,
     _oa([{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not base64@@"}}]),
     "base64-encoded data URL"),
    ("oa image of an unknown type", OA,
     _oa([{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]),
     "unsupported image"),
    ("oa image that is no image", OA,
     _oa([{"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(b"hello")}}]),
     "unsupported image"),
    ("oa part of an unknown type", OA, _oa([{"type": "video", "video": {}}]), "Invalid value: 'video'"),
    ("oa image in a system message", OA,
     _oa(messages=[{"role": "system", "content": [{"type": "image_url",
                                                   "image_url": {"url": "https://x/a.png"}}]},
                   {"role": "user", "content": "hi"}]),
     "Supported values are: 'text'"),
    ("oa file without a filename", OA,
     _oa([{"type": "file", "file": {"file_data": "data:application/pdf;base64," + b64(b"%PDF-1.4")}}]),
     "filename"),
    ("oa file that is no PDF", OA,
     _oa([{"type": "file", "file": {"filename": "a.pdf",
                                    "file_data": "data:application/pdf;base64," + b64(b"hello")}}]),
     "Invalid file data"),
    ("oa tool_choice naming no tool", OA,
     _oa(tools=_OA_TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}),
     "'nope' was not found"),
    ("oa tool_choice without tools", OA, _oa(tool_choice="required"), "only allowed when 'tools'"),
    ("oa tool name with a space", OA,
     _oa(tools=[{"type": "function", "function": {"name": "get weather"}}]), "does not match pattern"),
    ("oa tool result without a call", OA,
     _oa(messages=[{"role": "user", "content": "hi"},
                   {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]),
     "must be a response to a preceeding message"),
    ("oa tool call left unanswered", OA,
     _oa(messages=[{"role": "user", "content": "hi"},
                   {"role": "assistant", "content": None, "tool_calls": [_TOOL_CALL]},
                   {"role": "user", "content": "and?"}]),
     "did not have response messages: call_1"),
    ("oa tool call arguments as an object", OA,
     _oa(messages=[{"role": "user", "content": "hi"},
                   {"role": "assistant", "tool_calls": [
                       dict(_TOOL_CALL, function={"name": "weather", "arguments": {"city": "x"}})]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]),
     "expected a string"),
    ("oa strict schema left open", OA,
     oa_schema_body({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
     "'additionalProperties' is required to be supplied and to be false"),
    ("oa strict schema with an optional property", OA,
     oa_schema_body({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                     "required": ["a"], "additionalProperties": False}),
     "Missing 'b'"),
    ("oa json_schema without a name", OA,
     _oa(response_format={"type": "json_schema", "json_schema": {"schema": WEATHER}}),
     "response_format.json_schema.name"),
    ("oa reasoning with max_tokens", OA, _oa(reasoning_effort="low", max_tokens=100),
     "Use 'max_completion_tokens'"),
    ("oa reasoning with a temperature", OA, _oa(reasoning_effort="high", temperature=0.2),
     "'temperature' does not support"),
    ("oa unknown reasoning effort", OA, _oa(reasoning_effort="extreme"), "Invalid value: 'extreme'"),
    # Anthropic
    ("an image of an unknown media type", AN, _an_img("image/bmp", _png()),
     "media_type: Input should be 'image/jpeg'"),
    ("an image data not base64", AN, _an_img("image/png", "not base64!"), "invalid base64"),
    ("an image that is not its media type", AN, _an_img("image/jpeg", _png()),
     "does not match the provided media type image/jpeg"),
    ("an document that is no PDF", AN,
     an_body([{"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                              "data": b64(b"hello")}}]),
     "The PDF specified was not valid"),
    ("an source of an unknown type", AN,
     an_body([{"type": "image", "source": {"type": "path", "path": "/etc/passwd"}}]),
     "Input tag 'path'"),
    ("an blank text block", AN, an_body([{"type": "text", "text": "  "}]), "non-whitespace"),
    ("an thinking budget not below max_tokens", AN,
     an_body(thinking={"type": "enabled", "budget_tokens": 2000}, max_tokens=2000),
     "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ("an thinking budget below 1024", AN,
     an_body(thinking={"type": "enabled", "budget_tokens": 512}), "greater than or equal to 1024"),
    ("an thinking with a forced tool", AN,
     an_body(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024}, tools=_AN_TOOLS,
             tool_choice={"type": "any"}),
     "tool_choice forces tool use"),
    ("an thinking with a temperature", AN,
     an_body(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024}, temperature=0.3),
     "`temperature` may only be set to 1"),
    ("an tool_choice naming no tool", AN,
     an_body(tools=_AN_TOOLS, tool_choice={"type": "tool", "name": "nope"}), "Tool 'nope' not found"),
    ("an tool without input_schema", AN, an_body(tools=[{"name": "weather"}]),
     "input_schema: Field required"),
    ("an tool result without a tool_use", AN,
     {"model": "c", "max_tokens": 100, "messages": [
         {"role": "user", "content": "hi"},
         {"role": "assistant", "content": "hello"},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                       "content": "sunny"}]}]},
     "unexpected `tool_use_id`"),
    ("an tool_use without a tool result", AN,
     {"model": "c", "max_tokens": 100, "messages": [
         {"role": "user", "content": "hi"},
         {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather",
                                            "input": {}}]},
         {"role": "user", "content": "well?"}]},
     "`tool_use` ids were found without `tool_result` blocks"),
    ("an tool result after text", AN,
     {"model": "c", "max_tokens": 100, "messages": [
         {"role": "user", "content": "hi"},
         {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather",
                                            "input": {}}]},
         {"role": "user", "content": [{"type": "text", "text": "here"},
                                      {"type": "tool_result", "tool_use_id": "toolu_1"}]}]},
     "unexpected `tool_use_id`"),
    ("an thinking after a tool call without its thinking block", AN,
     {"model": "c", "max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 1024},
      "tools": _AN_TOOLS, "messages": [
         {"role": "user", "content": "hi"},
         {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "weather",
                                            "input": {}}]},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                       "content": "sunny"}]}]},
     "Expected `thinking` or `redacted_thinking`, but found `tool_use`"),
    ("an structured output left open", AN,
     an_body(output_config={"format": {"type": "json_schema", "schema": {
         "type": "object", "properties": {"a": {"type": "string"}}}}}),
     "'additionalProperties' must be explicitly set to false"),
    ("an structured output with a minimum", AN,
     an_body(output_config={"format": {"type": "json_schema", "schema": {
         "type": "object", "properties": {"a": {"type": "integer", "minimum": 1}},
         "additionalProperties": False}}}),
     "property 'minimum' is not supported"),
    ("an beta output_format without its header", AN,
     an_body(output_format={"type": "json_schema", "schema": ANTHROPIC_SCHEMA}), "Extra inputs"),
    # Gemini
    ("ge functionResponse without a name", GE(),
     {"contents": [{"role": "user", "parts": [{"text": "hi"}]},
                   {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {}}}]},
                   {"role": "user", "parts": [{"functionResponse": {"response": {"t": 1}}}]}]},
     "function_response.name: Name cannot be empty"),
    ("ge inlineData not base64", GE(),
     ge_body([{"inlineData": {"mimeType": "image/png", "data": "***"}}]), "Base64 decoding failed"),
    ("ge inlineData of an unknown type", GE(),
     ge_body([{"inlineData": {"mimeType": "application/x-foo", "data": _png()}}]),
     "Unsupported MIME type"),
    ("ge image that is no image", GE(),
     ge_body([{"inlineData": {"mimeType": "image/png", "data": b64(b"hello")}}]),
     "Unable to process input image"),
    ("ge part with two kinds of data", GE(),
     ge_body([{"text": "a", "inlineData": {"mimeType": "image/png", "data": _png()}}]),
     "oneof field 'data' is already set"),
    ("ge part with no data", GE(), ge_body([{"thought": True}]), "required oneof field 'data'"),
    ("ge function response without a call", GE(),
     {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "weather",
                                                                    "response": {}}}]}]},
     "function response turn comes immediately after a function call turn"),
    ("ge fewer responses than calls", GE(),
     {"contents": [{"role": "user", "parts": [{"text": "hi"}]},
                   {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {}}},
                                               {"functionCall": {"name": "weather", "args": {}}}]},
                   {"role": "user", "parts": [{"functionResponse": {"name": "weather",
                                                                    "response": {}}}]}]},
     "number of function response parts is equal"),
    ("ge responseSchema with a JSON Schema keyword", GE(),
     ge_body(generationConfig={"responseMimeType": "application/json",
                               "responseSchema": {"type": "OBJECT", "additionalProperties": False}}),
     "Unknown name \"additionalProperties\""),
    ("ge responseJsonSchema without the JSON mime type", GE(),
     ge_body(generationConfig={"responseJsonSchema": WEATHER}), "response_mime_type"),
    ("ge allowedFunctionNames with AUTO", GE(),
     ge_body(tools=_GE_TOOLS, toolConfig={"functionCallingConfig": {
         "mode": "AUTO", "allowedFunctionNames": ["weather"]}}),
     "allowed_function_names may only be set"),
    ("ge allowed function not declared", GE(),
     ge_body(tools=_GE_TOOLS, toolConfig={"functionCallingConfig": {
         "mode": "ANY", "allowedFunctionNames": ["nope"]}}),
     "'nope' is not declared"),
    ("ge function name starting with a digit", GE(),
     ge_body(tools=[{"functionDeclarations": [{"name": "9lives"}]}]), "Invalid function name"),
    ("ge thinking budget out of range", GE(),
     ge_body(generationConfig={"thinkingConfig": {"thinkingBudget": 100000}}),
     "thinking budget 100000 is invalid"),
]


def test_fake_rich_malformed_requests_get_the_providers_400():
    fp = FakeProvider()
    for what, path, body, words in MALFORMED:
        status, out = post(fp, path, body)
        assert status == 400, (what, out)
        if path == OA:
            err = out["error"]
            assert err["type"] == "invalid_request_error" and set(err) == {
                "message", "type", "param", "code"}, (what, out)
        elif path == AN:
            assert out["type"] == "error", (what, out)
            err = out["error"]
            assert err["type"] == "invalid_request_error", (what, out)
        else:
            err = out["error"]
            assert err["status"] == "INVALID_ARGUMENT" and err["code"] == 400, (what, out)
        assert words in err["message"], (what, err["message"])
    log = fp.requests()
    assert len(log) == len(MALFORMED)
    assert all(e["outcome"] == "invalid" and not e["billed"] for e in log)
    # OpenAI names the parameter at fault
    status, out = post(fp, OA, MALFORMED[0][2])
    assert out["error"]["param"] == "messages[0].content[0].image_url.url"


# ---------------------------------------------------------------- JSON Schema answers

def test_fake_rich_json_schema_answers_validate_in_each_format():
    fp = FakeProvider()
    out = ok(fp, OA, oa_schema_body(RICH_SCHEMA))
    answer = json.loads(oa_text(out))
    jsonschema.validate(answer, RICH_SCHEMA)
    assert re.fullmatch(r"INV-[0-9]{4}", answer["invoice"]) and 10.5 <= answer["total"] <= 99
    assert len(answer["lines"]) == 2 and answer["kind"] == "invoice"
    assert last(fp)["answer"] == "schema" and not last(fp)["broken"]

    # Anthropic structured outputs: the text; the forced tool: the tool's input
    for key, hdrs in (("output_config", {}),
                      ("output_format", {"anthropic-beta": "structured-outputs-2025-11-13"})):
        fmt = {"type": "json_schema", "schema": ANTHROPIC_SCHEMA}
        body = an_body(**{key: {"format": fmt} if key == "output_config" else fmt})
        out = ok(fp, AN, body, hdrs)
        jsonschema.validate(json.loads(an_blocks(out, "text")[0]["text"]), ANTHROPIC_SCHEMA)
        assert out["stop_reason"] == "end_turn"
    out = ok(fp, AN, an_body(tools=[{"name": "answer", "input_schema": RICH_SCHEMA}],
                             tool_choice={"type": "tool", "name": "answer"}))
    (use,) = an_blocks(out, "tool_use")
    assert use["name"] == "answer" and out["stop_reason"] == "tool_use"
    jsonschema.validate(use["input"], RICH_SCHEMA)

    # Gemini: responseJsonSchema takes JSON Schema; responseSchema the OpenAPI subset
    out = ok(fp, GE(), ge_body(generationConfig={"responseMimeType": "application/json",
                                                 "responseJsonSchema": RICH_SCHEMA}))
    jsonschema.validate(json.loads(ge_answer_parts(out)[0]["text"]), RICH_SCHEMA)
    openapi = {"type": "OBJECT", "properties": {
        "name": {"type": "STRING"}, "n": {"type": "INTEGER", "minimum": 4},
        "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["x", "y"]}, "minItems": 1},
        "maybe": {"type": "NUMBER", "nullable": True}},
        "required": ["name", "n", "tags", "maybe"], "propertyOrdering": ["name", "n"]}
    out = ok(fp, GE(), ge_body(generationConfig={"responseMimeType": "application/json",
                                                 "responseSchema": openapi}))
    answer = json.loads(ge_answer_parts(out)[0]["text"])
    assert answer == {"name": "fake", "n": 4, "tags": ["x"], "maybe": 0}, answer


def _oa_answer_valid(out, schema):
    try:
        jsonschema.validate(json.loads(oa_text(out)), schema)
        return True
    except jsonschema.ValidationError:
        return False


def test_fake_rich_break_schema_share():
    fp = FakeProvider(rules=[{"prefix": "/oa/v1", "break_schema_share": 0.2}])
    n = 200
    valid = [_oa_answer_valid(ok(fp, OA, oa_schema_body(RICH_SCHEMA)), RICH_SCHEMA)
             for _ in range(n)]
    broken = valid.count(False)
    assert 0.10 * n <= broken <= 0.35 * n, broken
    log = fp.requests()
    assert sum(e["broken"] for e in log) == broken
    assert {e["answer"] for e in log} == {"schema", "broken"}
    # both kinds of break: a required property of a wrong type, and one missing
    kinds = set()
    for _ in range(10):
        answer = json.loads(oa_text(ok(fp, OA, oa_schema_body(RICH_SCHEMA))))
        if "invoice" not in answer:
            kinds.add("dropped")
        elif not isinstance(answer["invoice"], str):
            kinds.add("wrong type")
    assert kinds == {"dropped", "wrong type"}, kinds

    # another provider instance is not touched; the forced tool is broken too
    fp.reset()
    for _ in range(20):
        out = ok(fp, "/other/chat/completions", oa_schema_body(RICH_SCHEMA))
        jsonschema.validate(json.loads(oa_text(out)), RICH_SCHEMA)
    fp.set_rules([{"prefix": "/an/v1", "break_schema_share": 0.5}])
    inputs = [an_blocks(ok(fp, AN, an_body(tools=[{"name": "answer", "input_schema": WEATHER}],
                                           tool_choice={"type": "tool", "name": "answer"})),
                        "tool_use")[0]["input"] for _ in range(10)]
    bad = sum(not jsonschema.Draft202012Validator(WEATHER).is_valid(i) for i in inputs)
    assert bad == 5, inputs

    st, out = http("POST", fp.url("/_control/rules"), [{"break_schema_share": 1.5}])
    assert st == 400 and b"break_schema_share" in out


# ---------------------------------------------------------------- tools

def test_fake_rich_tool_calls_and_tool_result_follow_up_openai():
    fp = FakeProvider()
    base = {"model": "gpt-x", "tools": _OA_TOOLS + [
        {"type": "function", "function": {"name": "noop"}}]}
    out = ok(fp, OA, dict(base, messages=[{"role": "user", "content": "weather in Oslo?"}]))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "weather"
    assert isinstance(call["function"]["arguments"], str)
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)
    assert (last(fp)["answer"], last(fp)["tool"]) == ("tool_call", "weather")

    convo = [{"role": "user", "content": "weather in Oslo?"},
             {"role": "assistant", "content": None, "tool_calls": [call]},
             {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    out = ok(fp, OA, dict(base, messages=convo))
    assert out["choices"][0]["finish_reason"] == "stop"
    assert "fake answer" in oa_text(out) and "tool_calls" not in out["choices"][0]["message"]
    assert out["usage"]["prompt_tokens"] == text_tokens("weather in Oslo?", "", "sunny")

    # a forced call goes on after a tool result; a named one picks its tool; none: text
    out = ok(fp, OA, dict(base, messages=convo, tool_choice="required"))
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "weather"
    out = ok(fp, OA, dict(base, messages=convo[:1],
                          tool_choice={"type": "function", "function": {"name": "noop"}}))
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "noop", "arguments": "{}"}
    out = ok(fp, OA, dict(base, messages=convo[:1], tool_choice="none"))
    assert "fake answer" in oa_text(out)


def test_fake_rich_tool_calls_and_tool_result_follow_up_anthropic():
    fp = FakeProvider()
    out = ok(fp, AN, an_body("weather in Oslo?", tools=_AN_TOOLS + [
        {"type": "web_search_20250305", "name": "web_search"}]))
    assert out["stop_reason"] == "tool_use"
    (use,) = an_blocks(out, "tool_use")
    assert use["id"].startswith("toolu_") and use["name"] == "weather"
    jsonschema.validate(use["input"], WEATHER)

    convo = [{"role": "user", "content": "weather in Oslo?"},
             {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}, use]},
             {"role": "user", "content": [
                 {"type": "tool_result", "tool_use_id": use["id"], "content": "sunny"},
                 {"type": "text", "text": "thanks"}]}]
    out = ok(fp, AN, an_body(tools=_AN_TOOLS) | {"messages": convo})
    assert out["stop_reason"] == "end_turn" and an_blocks(out, "tool_use") == []
    assert "fake answer" in an_blocks(out, "text")[0]["text"]
    out = ok(fp, AN, an_body(tools=_AN_TOOLS, tool_choice={"type": "any"}) | {"messages": convo})
    assert an_blocks(out, "tool_use")[0]["name"] == "weather"
    out = ok(fp, AN, an_body(tools=_AN_TOOLS, tool_choice={"type": "none"}))
    assert out["stop_reason"] == "end_turn"

    # thinking on after a tool call: the calling turn holds its thinking block
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    convo[1]["content"] = [thinking, use]
    out = ok(fp, AN, {"model": "c", "max_tokens": 4000, "tools": _AN_TOOLS, "messages": convo,
                      "thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert out["stop_reason"] == "end_turn" and an_blocks(out, "thinking")


def test_fake_rich_tool_calls_and_tool_result_follow_up_gemini():
    fp = FakeProvider()
    openapi_tool = {"name": "lookup", "parameters": {
        "type": "OBJECT", "properties": {"q": {"type": "STRING"}}, "required": ["q"]}}
    tools = [{"functionDeclarations": _GE_TOOLS[0]["functionDeclarations"] + [openapi_tool]},
             {"googleSearch": {}}]
    out = ok(fp, GE(), ge_body([{"text": "weather in Oslo?"}], tools=tools))
    (part,) = ge_answer_parts(out)
    assert part["functionCall"]["name"] == "weather"
    assert out["candidates"][0]["finishReason"] == "STOP"
    jsonschema.validate(part["functionCall"]["args"], WEATHER)

    convo = [{"role": "user", "parts": [{"text": "weather in Oslo?"}]},
             {"role": "model", "parts": [part]},
             {"role": "user", "parts": [{"functionResponse": {"name": "weather",
                                                              "response": {"content": "sunny"}}}]}]
    out = ok(fp, GE(), {"contents": convo, "tools": tools})
    assert "fake answer" in ge_answer_parts(out)[0]["text"]
    out = ok(fp, GE(), {"contents": convo, "tools": tools, "toolConfig": {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}}})
    assert ge_answer_parts(out)[0]["functionCall"] == {"name": "lookup", "args": {"q": "fake"}}
    out = ok(fp, GE(), ge_body(tools=tools, toolConfig={"functionCallingConfig": {"mode": "NONE"}}))
    assert "text" in ge_answer_parts(out)[0]


# ---------------------------------------------------------------- refusals

def test_fake_rich_refusals_on_demand():
    fp = FakeProvider(rules=[{"model": "prude*", "refuse": True}])
    out = ok(fp, OA, _oa("PLEASE_REFUSE this"))
    msg = out["choices"][0]["message"]
    assert msg["content"] is None and msg["refusal"] and out["choices"][0]["finish_reason"] == "stop"
    out = ok(fp, OA, oa_schema_body(RICH_SCHEMA, model="prude-1"))
    assert out["choices"][0]["message"]["content"] is None
    assert last(fp)["answer"] == "refusal" and last(fp)["billed"]

    out = ok(fp, AN, an_body("PLEASE_REFUSE", tools=_AN_TOOLS))
    assert out["stop_reason"] == "refusal" and an_blocks(out, "tool_use") == []
    out = ok(fp, AN, an_body(model="prude-2"))
    assert out["stop_reason"] == "refusal"

    out = ok(fp, GE(), ge_body([{"text": "PLEASE_REFUSE"}]))
    cand = out["candidates"][0]
    assert cand["finishReason"] == "SAFETY" and "content" not in cand
    assert out["usageMetadata"]["candidatesTokenCount"] == 16
    out = ok(fp, GE("prude-3"), ge_body())
    assert out["candidates"][0]["finishReason"] == "SAFETY"
    out = ok(fp, GE(), ge_body())
    assert out["candidates"][0]["finishReason"] == "STOP"


# ---------------------------------------------------------------- thinking

def test_fake_rich_thinking_usage_within_the_budget():
    fp = FakeProvider(rules=[{"model": "deep*", "reasoning_tokens": 5000, "output_tokens": 30}])
    # OpenAI: reasoning_tokens inside completion_tokens, within max_completion_tokens
    out = ok(fp, OA, _oa(reasoning_effort="medium"))
    u = out["usage"]
    assert u["completion_tokens_details"]["reasoning_tokens"] == 64
    assert u["completion_tokens"] == 16 + 64 and u["total_tokens"] == u["prompt_tokens"] + 80
    assert (last(fp)["reasoning_tokens"], last(fp)["output_tokens"]) == (64, 80)
    out = ok(fp, OA, _oa(model="deep-1", reasoning_effort="high", max_completion_tokens=1000))
    u = out["usage"]
    assert u["completion_tokens_details"]["reasoning_tokens"] == 1000 and u["completion_tokens"] == 1000
    assert out["choices"][0]["finish_reason"] == "length"
    out = ok(fp, OA, _oa())
    assert out["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0

    # Anthropic: a thinking block (not content), output_tokens include it, capped by budget_tokens
    out = ok(fp, AN, an_body(model="deep-2", max_tokens=3000,
                             thinking={"type": "enabled", "budget_tokens": 1500}))
    assert [b["type"] for b in out["content"]] == ["thinking", "text"]
    assert out["content"][0]["signature"] and "fake answer" in out["content"][1]["text"]
    assert out["usage"]["output_tokens"] == 1500 + 30
    assert last(fp)["reasoning_tokens"] == 1500
    out = ok(fp, AN, an_body())
    assert an_blocks(out, "thinking") == []

    # Gemini: thoughtsTokenCount apart from candidatesTokenCount, a thought part
    out = ok(fp, GE("deep-3"), ge_body(generationConfig={
        "maxOutputTokens": 200, "thinkingConfig": {"thinkingBudget": 100, "includeThoughts": True}}))
    um = out["usageMetadata"]
    assert (um["thoughtsTokenCount"], um["candidatesTokenCount"]) == (100, 30)
    assert um["totalTokenCount"] == um["promptTokenCount"] + 130
    parts = ge_parts(out)
    assert parts[0]["thought"] is True and "fake answer" in parts[1]["text"]
    out = ok(fp, GE(), ge_body(generationConfig={"thinkingConfig": {"thinkingBudget": 0}}))
    assert "thoughtsTokenCount" not in out["usageMetadata"]
    # a dynamic budget (-1): the wanted thinking, within maxOutputTokens
    out = ok(fp, GE("deep-4"), ge_body(generationConfig={
        "maxOutputTokens": 300, "thinkingConfig": {"thinkingBudget": -1}}))
    um = out["usageMetadata"]
    assert um["thoughtsTokenCount"] + um["candidatesTokenCount"] == 300
    assert out["candidates"][0]["finishReason"] == "MAX_TOKENS"


# ---------------------------------------------------------------- cache writes

def test_fake_rich_anthropic_cache_writes():
    text = "a long system prompt " * 20
    fp = FakeProvider(rules=[{"prefix": "/an/v1", "cached_tokens": 10, "cache_write_tokens": 50},
                             {"cache_write_tokens": 50}])
    out = ok(fp, AN, an_body(system=[{"type": "text", "text": text,
                                      "cache_control": {"type": "ephemeral"}}]))
    u = out["usage"]
    total = text_tokens(text, "hello")
    assert (u["cache_creation_input_tokens"], u["cache_read_input_tokens"]) == (50, 10)
    assert u["input_tokens"] == total - 60
    e = last(fp)
    assert (e["input_tokens"], e["cached_tokens"], e["cache_write_tokens"]) == (total, 10, 50)
    # OpenAI has no cache writes
    out = ok(fp, OA, _oa(text))
    assert out["usage"]["prompt_tokens"] == text_tokens(text) and last(fp)["cache_write_tokens"] == 0


# ---------------------------------------------------------------- files

def test_fake_rich_files_for_url_parts():
    fp = FakeProvider()
    magic = {"tiny.png": (b"\x89PNG\r\n\x1a\n", "image/png"), "tiny.jpg": (b"\xff\xd8\xff", "image/jpeg"),
             "tiny.gif": (b"GIF89a", "image/gif"), "tiny.webp": (b"RIFF", "image/webp")}
    for name, (head, _) in magic.items():
        assert fetch(fp, name).startswith(head), name

    pdf = fetch(fp, "pages-3.pdf")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page(?![A-Za-z0-9])", pdf)) == 3
    # the xref table points at each object
    xref = int(pdf[pdf.rindex(b"startxref") + 9:].split()[0])
    assert pdf[xref:].startswith(b"xref")
    offsets = [int(line.split()[0]) for line in pdf[xref:].split(b"\n")[3:3 + 5]]
    for obj, off in enumerate(offsets, start=1):
        assert pdf[off:].startswith(b"%d 0 obj" % obj), (obj, off)
    assert fetch(fp, "doc.pdf").count(b"/Type /Page ") == 1
    assert len(fetch(fp, "big-100000.png")) == 100000

    st, _ = http("GET", fp.url("/_files/nope.png"))
    assert st == 404
    st, _ = http("GET", fp.url("/_files/pages-0.pdf"))
    assert st == 404
    st, _ = http("POST", fp.url("/_files/tiny.png"), {})
    assert st == 405
    files = fp.stats()["files"]
    assert files["tiny.png"] == 1 and files["pages-3.pdf"] == 1 and "nope.png" not in files
    assert fp.requests() == []  # files are not API calls

    # what it serves passes its own checks as inline parts
    for name, (_, media) in magic.items():
        ok(fp, AN, _an_img(media, b64(fetch(fp, name))))
    fp.reset()
    assert fp.stats()["files"] == {}
