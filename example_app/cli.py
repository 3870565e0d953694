"""``flask --app example_app seed`` and ``flask --app example_app simulate KIND --brand SLUG``."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from . import db
from .models import Brand
from .simulate import SIMULATIONS
from .simulate import simulate as run_simulation

# Fixed ids, so the README's curl examples can name Acme's brand directly.
DEMO_BRANDS = [
    ("3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c", "acme", "Acme", "https://acme.example"),
    ("8d1e4b7a-2c3f-4e5d-a6b7-c8d9e0f1a2b3", "globex", "Globex", "https://globex.example"),
]


@click.command("seed")
@click.option("--json", "as_json", is_flag=True, help="Print the brands and keys as JSON.")
@with_appcontext
def seed(as_json: bool) -> None:
    """Create the demo brands (if missing) and print each one's API key."""
    created = []
    for brand_id, slug, name, website in DEMO_BRANDS:
        if db.session.execute(db.select(Brand).filter_by(slug=slug)).scalar_one_or_none():
            continue
        brand, key = Brand.create(slug, name, website, brand_id=brand_id)
        db.session.flush()
        created.append({"slug": slug, "id": brand.id, "name": name, "api_key": key})
    db.session.commit()
    if as_json:
        click.echo(json.dumps(created))
    else:
        for b in created:
            click.echo(f"{b['slug']}: id={b['id']} api_key={b['api_key']}")
        if not created:
            click.echo("brands already exist (their keys were shown when they were created)")


@click.command("simulate")
@click.argument("kind", type=click.Choice(sorted(SIMULATIONS)))
@click.option("--brand", "slug", required=True, help="Brand slug, e.g. acme.")
@click.option("--seed", type=int, default=None, help="Random seed for reproducible data.")
@with_appcontext
def simulate(kind: str, slug: str, seed: int | None) -> None:
    """Make an event happen for a brand, as the product would."""
    brand = db.session.execute(db.select(Brand).filter_by(slug=slug)).scalar_one_or_none()
    if brand is None:
        raise click.BadParameter(f"no brand {slug!r}; run 'flask --app example_app seed' first", param_hint="--brand")
    click.echo(run_simulation(brand, kind, seed))
