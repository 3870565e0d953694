"""Make the five kinds of events happen the way the product would, through ``webhooks.emit``."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

from . import db, webhooks
from .models import Brand

Simulation = Callable[[Brand, random.Random], tuple[str, dict[str, Any]]]


def _visibility(brand: Brand, rng: random.Random) -> tuple[str, dict[str, Any]]:
    previous = round(rng.uniform(20, 80), 1)
    current = round(max(0.0, min(100.0, previous + rng.choice([-1, 1]) * rng.uniform(8, 25))), 1)
    change = round((current - previous) / previous * 100, 1)
    return "visibility_changed", {
        "previous_score": previous,
        "current_score": current,
        "change_percent": change,
        "direction": "up" if current >= previous else "down",
    }


def _report(brand: Brand, rng: random.Random) -> tuple[str, dict[str, Any]]:
    report_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return "report_completed", {
        "report_id": report_id,
        "report_name": f"{brand.name} AI visibility report",
        "report_url": f"https://app.trakkr.example/reports/{report_id}",
    }


def _competitor(brand: Brand, rng: random.Random) -> tuple[str, dict[str, Any]]:
    name = rng.choice(["Globex", "Initech", "Umbrella", "Hooli", "Stark Industries"])
    return "competitor_added", {
        "competitor_name": name,
        "competitor_domain": name.lower().replace(" ", "") + ".example",
        "detected_by": rng.choice(["ai_mentions", "manual"]),
    }


def _citation(kind: str) -> Simulation:
    def make(brand: Brand, rng: random.Random) -> tuple[str, dict[str, Any]]:
        domain = rng.choice(["news.example", "reviews.example", "wiki.example"])
        return kind, {
            "source_url": f"https://{domain}/articles/{rng.randint(1000, 9999)}",
            "source_domain": domain,
            "platform": rng.choice(["ChatGPT", "Perplexity", "Gemini", "Claude"]),
            "prompt": f"best tools like {brand.name}",
        }

    return make


#: Short names accepted by ``flask simulate KIND`` and ``POST /brands/<slug>/simulate/<kind>``.
SIMULATIONS: dict[str, Simulation] = {
    "visibility": _visibility,
    "report": _report,
    "competitor": _competitor,
    "citation-gained": _citation("citation_gained"),
    "citation-lost": _citation("citation_lost"),
}


def simulate(brand: Brand, kind: str, seed: int | None = None) -> str:
    """Emit one event of ``kind`` for ``brand`` in the app's own transaction; return its ``evt_`` id."""
    if kind not in SIMULATIONS:
        raise ValueError(f"unknown simulation {kind!r}; choose one of {', '.join(SIMULATIONS)}")
    event_type, data = SIMULATIONS[kind](brand, random.Random(seed))
    # The host's own write and the webhook rows commit (or roll back) together.
    event_id = webhooks.emit(event_type, brand=brand.as_payload(), data=data)
    db.session.commit()
    return event_id
