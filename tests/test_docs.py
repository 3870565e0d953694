"""The README documents every configuration key with its real default."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flask_trakkr_webhooks.config import DEFAULTS, PREFIX

README = Path(__file__).resolve().parent.parent / "README.md"


def config_table() -> dict[str, str]:
    """``key -> default cell`` from the README's Configuration table."""
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 5)]
    rows = re.findall(r"^\| `(TRAKKR_WEBHOOKS_[A-Z_]+)` \| ([^|]+) \|", section, flags=re.M)
    return {key: default.strip() for key, default in rows}


def test_every_config_key_is_documented_once_with_its_default() -> None:
    table = config_table()
    assert set(table) == {PREFIX + k for k in DEFAULTS}, "README config table and config.DEFAULTS differ"
    for key, value in DEFAULTS.items():
        shown = table[PREFIX + key].strip("`")
        if value is None:
            assert shown == "none", key
        elif isinstance(value, (list, dict, bool, int, float)):
            assert json.loads(shown.lower()) == json.loads(json.dumps(value).lower()), key
        else:
            assert shown == value, key
