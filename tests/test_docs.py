"""The documentation: every configuration key described, and the Sphinx site builds with no warning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flask_trakkr_webhooks.config import DEFAULTS, DESCRIPTIONS, PREFIX

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_config_key_has_a_description_and_no_other_key_does() -> None:
    assert set(DESCRIPTIONS) == set(DEFAULTS)
    assert all(text.strip() for text in DESCRIPTIONS.values())


def test_the_generated_config_table_shows_every_key_with_its_default() -> None:
    sys.path.insert(0, str(DOCS))
    try:
        import conf  # docs/conf.py: generates on import; the table is rebuilt here on its own
    finally:
        sys.path.remove(str(DOCS))
    rows = conf.config_table().splitlines()[2:]
    assert len(rows) == len(DEFAULTS)
    for row, (key, value) in zip(rows, DEFAULTS.items(), strict=True):
        name, shown, _meaning = (cell.strip() for cell in row.strip("|").split(" | ", 2))
        assert name == f"`{PREFIX}{key}`"
        if value is None:
            assert shown == "none"
        elif isinstance(value, str):
            assert shown == f"`{value}`"
        else:
            assert json.loads(shown.strip("`").lower()) == json.loads(json.dumps(value).lower()), key


@pytest.mark.slow
def test_the_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "index.html").exists() and (tmp_path / "cli.html").exists()
