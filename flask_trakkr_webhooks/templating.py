"""``{{variable}}`` payload templates (minimal interface; full rules follow)."""
from __future__ import annotations

import json
import re
from typing import Any

#: Variable names a template may use; ``event.data.*`` means any path below ``event.data``.
VARIABLES: tuple[str, ...] = (
    "brand.id", "brand.name", "brand.website", "event.type", "event.id",
    "event.data.*", "summary", "workflow.name", "timestamp",
)

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class TemplateError(ValueError):
    """A template is not acceptable; ``variable`` names the offending variable (or None)."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def _known(name: str) -> bool:
    return name in VARIABLES or name.startswith("event.data.") and len(name) > len("event.data.")


def _lookup(name: str, payload: dict) -> Any:
    if name == "timestamp":
        name = "event.timestamp"
    cur: Any = payload
    for part in name.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def validate(template: Any) -> None:
    """Raise ``TemplateError`` unless ``template`` is a JSON object/array using only known variables."""
    if not isinstance(template, (dict, list)):
        raise TemplateError("template must be a JSON object or array")

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            for m in _PLACEHOLDER.finditer(node):
                if not _known(m.group(1)):
                    raise TemplateError(f"unknown template variable {m.group(1)!r}", m.group(1))

    walk(template)


def render(template: Any, payload: dict) -> Any:
    """Substitute placeholders in the parsed ``template`` with values from ``payload`` (pure)."""

    def sub(node: Any) -> Any:
        if isinstance(node, dict):
            return {sub(k) if isinstance(k, str) else k: sub(v) for k, v in node.items()}
        if isinstance(node, list):
            return [sub(v) for v in node]
        if isinstance(node, str):
            whole = _PLACEHOLDER.fullmatch(node)
            if whole:
                return _lookup(whole.group(1), payload)
            return _PLACEHOLDER.sub(lambda m: _text(_lookup(m.group(1), payload)), node)
        return node

    return sub(template)
