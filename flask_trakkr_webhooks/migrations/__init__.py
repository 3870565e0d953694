"""The extension's Alembic migrations: a branch of their own, labelled ``trakkr_webhooks``.

A host using Alembic or Flask-Migrate adds :data:`VERSIONS` to its ``version_locations``
(docs/upgrading.md); a host without Alembic runs ``flask webhooks db upgrade``, which uses
this folder as its script location (its own ``env.py``) and records the revision in the
table :data:`VERSION_TABLE`.
"""

from __future__ import annotations

from pathlib import Path

#: This folder: the script location of ``flask webhooks db``.
HERE = Path(__file__).resolve().parent
#: The revision scripts: what a host adds to Alembic's ``version_locations``.
VERSIONS = HERE / "versions"
#: The branch label of every revision here (``flask db upgrade trakkr_webhooks@head``).
BRANCH = "trakkr_webhooks"
#: The version table of ``flask webhooks db`` (a host's own Alembic keeps ``alembic_version``).
VERSION_TABLE = "trakkr_webhooks_alembic_version"
