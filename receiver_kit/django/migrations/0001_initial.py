"""Create the idempotency table ``receiver_kit_idempotency``."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # Django ships no type information
    """The ``IdempotencyKey`` model's table and its ``expires_at`` index."""

    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="IdempotencyKey",
            fields=[
                (
                    "key",
                    models.CharField(db_column="idempotency_key", max_length=255, primary_key=True, serialize=False),
                ),
                ("state", models.CharField(max_length=16)),
                ("token", models.CharField(max_length=64)),
                ("expires_at", models.FloatField(db_index=True)),
            ],
            options={"db_table": "receiver_kit_idempotency"},
        ),
    ]
