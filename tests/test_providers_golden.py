"""Golden files: the exact body each provider gets for each event type.

The files in ``tests/golden/<provider>/<scenario>.json`` were generated once and read by
eye. To regenerate after an intended change, run
``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_providers_golden.py`` and review
the diff before committing.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from flask_trakkr_webhooks import providers
from flask_trakkr_webhooks.providers.samples import SAMPLE_DATA, SAMPLE_DROP, sample_payload

GOLDEN = pathlib.Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

#: scenario name -> (event type, data, summary or None for the sample's own)
SCENARIOS = {
    **{event_type: (event_type, data, None) for event_type, data in SAMPLE_DATA.items()},
    "visibility_changed_drop": (
        "visibility_changed",
        SAMPLE_DROP,
        "Acme's AI visibility score fell from 57.5 to 44 (\u221223.5%).",
    ),
    "custom_event": (
        "keyword.ranked",
        {
            "keyword": "ai visibility",
            "rank": 3,
            "previous_rank": 7,
            "dashboard_url": "https://app.trakkr.example/keywords/42",
        },
        '"ai visibility" now ranks #3 for Acme.',
    ),
}


def _payload(scenario: str) -> dict:
    event_type, data, summary = SCENARIOS[scenario]
    return sample_payload(event_type, data, summary=summary, test=False)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("provider", providers.PROVIDERS)
def test_body_matches_golden_file(provider, scenario):
    body = providers.format_body(provider, _payload(scenario))
    path = GOLDEN / provider / f"{scenario}.json"
    text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing {path}; run with UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text("utf-8")) == json.loads(text)


def test_no_stale_golden_files():
    expected = {f"{p}/{s}.json" for p in providers.PROVIDERS for s in SCENARIOS}
    found = {str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*.json")}
    assert found == expected
