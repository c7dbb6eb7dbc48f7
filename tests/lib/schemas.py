"""schemas: validate promptyard's messages against schemas/*.schema.json.

    from schemas import validate
    validate("result", obj)   # raises AssertionError naming the path and the problem

Runs on Debian's python3-jsonschema (4.10; /usr/bin/python3). Two choices
differ from a stock Draft202012Validator, both to match what the worker does:

- "format" is asserted, with a date-time checker written here: jsonschema
  checks date-time only when the rfc3339-validator package is installed, and
  Debian does not pull it in, so without this a bad timestamp would pass.
- "integer" means a JSON integer (5), not any number with no fraction (5.0,
  which JSON Schema counts as an integer): the worker refuses 5.0 for
  max_tokens, and a float in cost_nusd is the kind of mistake to catch.
"""

import datetime
import json
import os
import re

import jsonschema

KINDS = ("job", "result", "cost", "dlq")
SCHEMA_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "..", "..", "schemas"))

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"([Zz]|[+-](\d{2}):(\d{2}))$")


def is_rfc3339(value):
    """True for an RFC 3339 date-time ("2026-11-22T03:00:00.123Z",
    "2026-11-22T04:00:00+01:00"); a leap second (:60) is allowed."""
    if not isinstance(value, str):
        return True  # format applies to strings only; "type" judges the rest
    m = _RFC3339.match(value)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 60:
        return False
    if m.group(9) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return False
    return True


def _format_checker():
    checker = jsonschema.FormatChecker()
    checker.checkers["date-time"] = (is_rfc3339, ())
    return checker


def _is_json_integer(_checker, instance):
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", _is_json_integer),
)

_schemas = {}
_validators = {}


def schema(kind):
    """The parsed schema of kind (one of KINDS)."""
    if kind not in KINDS:
        raise ValueError("unknown schema kind %r (one of %s)" % (kind, ", ".join(KINDS)))
    if kind not in _schemas:
        with open(os.path.join(SCHEMA_DIR, kind + ".schema.json"), encoding="utf-8") as f:
            _schemas[kind] = json.load(f)
    return _schemas[kind]


def check_schema(kind):
    """Raises jsonschema.SchemaError if the schema itself is not valid 2020-12."""
    jsonschema.Draft202012Validator.check_schema(schema(kind))


def _validator(kind):
    if kind not in _validators:
        check_schema(kind)
        _validators[kind] = _Validator(schema(kind), format_checker=_format_checker())
    return _validators[kind]


def _path(error):
    out = "$"
    for part in error.absolute_path:
        out += "[%d]" % part if isinstance(part, int) else "." + str(part)
    return out


def errors(kind, obj):
    """Every problem of obj against the schema of kind, as "PATH: message"
    strings (empty when obj is valid)."""
    found = sorted(_validator(kind).iter_errors(obj),
                   key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return ["%s: %s" % (_path(e), e.message) for e in found]


def validate(kind, obj):
    """Raises AssertionError listing every problem if obj does not match the
    schema of kind ("job", "result", "cost" or "dlq"); returns obj otherwise.
    obj may also be a JSON text (str or bytes)."""
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError as e:
            raise AssertionError("%s: not JSON: %s" % (kind, e)) from None
    problems = errors(kind, obj)
    if problems:
        raise AssertionError("%s does not match %s.schema.json:\n  %s"
                             % (kind, kind, "\n  ".join(problems)))
    return obj
