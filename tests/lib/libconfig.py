"""Python values -> libconfig text, the configuration syntax of SPEC section 8.

    dict            group       name: { ... };   (at the top level: settings)
    list of dicts   list        name = ( { ... }, { ... } );
    list of scalars array       name = [ "a", "b" ];
    other lists     list        name = ( ..., ... );   (mixed types, nested lists)
    str             "escaped"
    bool            true / false
    int             123, or 123L beyond 32 bits
    float           always with a decimal point: 1.0, 0.15, 1.0e-05
    None            the setting is left out (handy for overrides)

An empty Python list becomes an empty list `()`: libconfig accepts a list
where an array may be empty, and config readers treat both as "no items".
"""
import math
import re

_NAME = re.compile(r"^[A-Za-z*][-A-Za-z0-9_*]*$")


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}L" if not -2**31 <= v < 2**31 else str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ValueError(f"libconfig has no {v}")
        text = repr(v)
        if "." not in text:
            if "e" in text:
                mant, exp = text.split("e")
                text = f"{mant}.0e{exp}"
            else:
                text += ".0"
        return text
    if isinstance(v, str):
        out = ['"']
        for ch in v:
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\r":
                out.append("\\r")
            elif ch == "\t":
                out.append("\\t")
            elif ch == "\f":
                out.append("\\f")
            elif ord(ch) < 0x20 or ord(ch) == 0x7f:
                out.append(f"\\x{ord(ch):02x}")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    raise TypeError(f"cannot write {type(v).__name__} {v!r} in libconfig")


def _is_scalar(v):
    return isinstance(v, (bool, int, float, str))


def _value(v, indent):
    pad = "  " * indent
    if isinstance(v, dict):
        lines = ["{"]
        for k, sub in v.items():
            if sub is None:
                continue
            lines.append(f"{pad}  {_setting(k, sub, indent + 1)}")
        lines.append(f"{pad}}}")
        return "\n".join(lines)
    if isinstance(v, (list, tuple)):
        items = [x for x in v if x is not None]
        if not items:
            return "()"
        if all(_is_scalar(x) for x in items) and len({_kind(x) for x in items}) == 1:
            return "[" + ", ".join(_scalar(x) for x in items) + "]"
        inner = [f"{pad}  {_value(x, indent + 1)}" for x in items]
        return "(\n" + ",\n".join(inner) + f"\n{pad})"
    return _scalar(v)


def _kind(v):
    # libconfig arrays hold one scalar type; int and float do not mix.
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    return type(v).__name__


def _setting(name, v, indent):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not a valid libconfig setting name")
    if isinstance(v, dict):
        return f"{name}: {_value(v, indent)};"
    return f"{name} = {_value(v, indent)};"


def dumps(cfg):
    """The libconfig text of a dict of top-level settings."""
    if not isinstance(cfg, dict):
        raise TypeError("the top level of a libconfig file is a dict of settings")
    out = []
    for k, v in cfg.items():
        if v is None:
            continue
        out.append(_setting(k, v, 0))
    return "\n".join(out) + "\n"


def write_config(path, cfg):
    """Writes cfg (a dict) to path as libconfig text; returns the path."""
    text = dumps(cfg)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
