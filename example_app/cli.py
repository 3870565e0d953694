"""``flask --app example_app seed`` and ``flask --app example_app simulate KIND --brand SLUG``."""
from __future__ import annotations

import json

import click

from . import db
from .models import Brand
from .simulate import SIMULATIONS, simulate as run_simulation

DEMO_BRANDS = [
    ("acme", "Acme", "https://acme.example"),
    ("globex", "Globex", "https://globex.example"),
]


@click.command("seed")
@click.option("--json", "as_json", is_flag=True, help="Print the brands and keys as JSON.")
def seed(as_json: bool) -> None:
    """Create the demo brands (if missing) and print each one's API key."""
    created = []
    for slug, name, website in DEMO_BRANDS:
        if db.session.execute(db.select(Brand).filter_by(slug=slug)).scalar_one_or_none():
            continue
        brand, key = Brand.create(slug, name, website)
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
def simulate(kind: str, slug: str, seed: int | None) -> None:
    """Make an event happen for a brand, as the product would."""
    brand = db.session.execute(db.select(Brand).filter_by(slug=slug)).scalar_one_or_none()
    if brand is None:
        raise click.BadParameter(f"no brand {slug!r}; run 'flask --app example_app seed' first", param_hint="--brand")
    click.echo(run_simulation(brand, kind, seed))
