"""``{{variable}}`` payload templates: a JSON object or array whose strings hold placeholders.

Rules (the README's "Templating" section says the same with examples):

* Substitution walks the *parsed* template; it never edits JSON text, so a value holding
  quotes, braces or ``{{...}}`` cannot break the body or be expanded again.
* A string that is exactly one placeholder (``"{{event.data.current_score}}"``, spaces
  inside the braces allowed) becomes the value itself with its JSON type: number, string,
  boolean, object, array or ``null``.
* Inside a longer string a value is rendered as text: strings as they are, whole floats
  without ``.0`` (``41.0`` -> ``41``), other numbers in Python's shortest form, booleans as
  ``true``/``false``, objects and arrays as compact JSON, a missing value as empty text.
* A known variable with no value (missing key, ``workflow`` null) renders ``null`` alone or
  empty text inside a string. Non-finite floats render as missing.
* Object keys may hold placeholders too; they always render as text. If two keys render
  to the same text, the later one (in template order) wins.
* Variables: :data:`VARIABLES`. ``event.data.<path>`` reaches any depth; a path segment
  that is a number indexes an array (``event.data.items.0.name``). ``timestamp`` is
  ``event.timestamp``. No expressions, filters, defaults or code: anything else between
  ``{{`` and ``}}`` is an unknown variable, refused by :func:`validate`.
* There is no escape for a literal ``{{name}}``; text that is not a placeholder
  (a lone ``{{`` or ``}}``, ``{{`` with a brace inside) is left as it is.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import TrakkrWebhooksError
from .providers.text import format_number

#: Variables a template may use; ``event.data.*`` stands for any path below ``event.data``.
VARIABLES: tuple[str, ...] = (
    "brand.id",
    "brand.name",
    "brand.website",
    "event.id",
    "event.type",
    "event.data",
    "event.data.*",
    "summary",
    "workflow.name",
    "timestamp",
)

#: Deepest nesting a template may have (keeps rendering and validation bounded).
MAX_DEPTH = 32

_FIXED = {
    "brand.id": ("brand", "id"),
    "brand.name": ("brand", "name"),
    "brand.website": ("brand", "website"),
    "event.id": ("event", "id"),
    "event.type": ("event", "type"),
    "event.data": ("event", "data"),
    "summary": ("summary",),
    "workflow.name": ("workflow", "name"),
    "timestamp": ("event", "timestamp"),
}
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SEGMENT = re.compile(r"[^\s.{}]+")
_MISSING = object()


class TemplateError(TrakkrWebhooksError, ValueError):
    """A template is not acceptable.

    ``variable`` names the offending variable (``None`` when the problem is the shape), and
    ``path`` says where in the template it is, as ``$``, ``$.text``, ``$.items[0]``.
    """

    def __init__(self, message: str, variable: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable
        self.path = path


def _parse(name: str) -> tuple[str, ...] | None:
    """The payload path for variable ``name``, or None when it is not a known variable."""
    if name in _FIXED:
        return _FIXED[name]
    if name.startswith("event.data."):
        segments = name[len("event.data.") :].split(".")
        if all(_SEGMENT.fullmatch(s) for s in segments):
            return ("event", "data", *segments)
    return None


def is_known(name: str) -> bool:
    """True if ``{{name}}`` is an allowed variable."""
    return _parse(name) is not None


def placeholders(text: str) -> list[str]:
    """The variable names used in ``text``, in order (duplicates kept)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(text)]


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{path}[{json.dumps(key)}]"


def validate(template: Any) -> None:
    """Raise :class:`TemplateError` unless ``template`` is an acceptable template.

    Acceptable: a JSON object or array (nested at most :data:`MAX_DEPTH` deep) of strings,
    numbers, booleans and nulls whose strings and keys use only :data:`VARIABLES`.
    """
    if not isinstance(template, (dict, list)):
        raise TemplateError("template must be a JSON object or array", None, "$")

    def check_text(text: str, path: str) -> None:
        for name in placeholders(text):
            if not is_known(name):
                known = ", ".join(VARIABLES)
                shown = name or "{{}}"
                raise TemplateError(
                    f"unknown template variable '{shown}' at {path}; known variables: {known}", name, path
                )

    def walk(node: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise TemplateError(f"template nests deeper than {MAX_DEPTH} levels at {path}", None, path)
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise TemplateError(f"template object keys must be strings at {path}", None, path)
                check_text(key, _child(path, key))
                walk(value, _child(path, key), depth + 1)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, _child(path, i), depth + 1)
        elif isinstance(node, str):
            check_text(node, path)
        elif isinstance(node, float) and not math.isfinite(node):
            raise TemplateError(f"template holds a non-finite number at {path}", None, path)
        elif node is not None and not isinstance(node, (bool, int, float)):
            raise TemplateError(f"template holds a {type(node).__name__}, not JSON, at {path}", None, path)

    walk(template, "$", 0)


def _lookup(name: str, payload: dict[str, Any]) -> Any:
    path = _parse(name)
    if path is None:
        return _MISSING  # only reachable for templates that skipped validate()
    cur: Any = payload
    for part in path:
        if isinstance(cur, dict):
            cur = cur.get(part, _MISSING)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def _json_value(value: Any, depth: int = 0) -> Any:
    """A fresh JSON-safe copy of a payload value (NaN/inf -> None, unknown objects -> str)."""
    if value is _MISSING or value is None or isinstance(value, (bool, str)):
        return None if value is _MISSING else value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 200:
        return None
    if isinstance(value, dict):
        return {str(k): _json_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v, depth + 1) for v in value]
    return str(value)


def as_text(value: Any) -> str:
    """How a value reads inside a longer string (see the module rules)."""
    value = _json_value(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_number(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def render(template: Any, payload: object) -> Any:
    """Substitute every placeholder in the parsed ``template`` from ``payload``; pure.

    Returns a new structure (nothing is shared with ``template`` or ``payload``). Never
    raises for a JSON template; an unknown variable (only possible if :func:`validate` was
    skipped) renders like a missing value.
    """
    if not isinstance(payload, dict):
        payload = {}

    def text(node: str) -> str:
        # One pass of re.sub: inserted values are never scanned again.
        return _PLACEHOLDER.sub(lambda m: as_text(_lookup(m.group(1), payload)), node)

    def sub(node: Any, depth: int) -> Any:
        if isinstance(node, str):
            whole = _PLACEHOLDER.fullmatch(node)
            if whole:
                return _json_value(_lookup(whole.group(1), payload))
            return text(node)
        if depth > MAX_DEPTH * 4:  # validate() caps depth; this only guards unvalidated input
            return None
        if isinstance(node, dict):
            return {text(k) if isinstance(k, str) else str(k): sub(v, depth + 1) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [sub(v, depth + 1) for v in node]
        return _json_value(node)

    return sub(template, 0)
