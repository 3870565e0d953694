"""Credentials at rest: Fernet keys, the EncryptedText column type, rotation, the startup rule.

The database tests run on SQLite and, with ``DATABASE_URL=postgresql://...``, on PostgreSQL,
and read the stored value back with raw SQL to prove it is not the plaintext.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import crypto
from flask_trakkr_webhooks.config import load_settings
from flask_trakkr_webhooks.crypto import DecryptionError, EncryptedText, KeyRing

TABLE = "crypto_test_secrets"
OLD = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
NEW = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
OTHER = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="


def secret_model(db: SQLAlchemy) -> Any:
    """A tiny model with two encrypted columns on ``db``."""

    class Secret(db.Model):
        __tablename__ = TABLE
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.String(50), nullable=False)
        token = sa.Column(EncryptedText, nullable=True)
        password = sa.Column(EncryptedText, nullable=True)

    return Secret


@pytest.fixture
def plain_app(database_url: str) -> Iterator[Callable[..., tuple[Flask, SQLAlchemy, Any]]]:
    """Factory: a bare Flask + Flask-SQLAlchemy app (no extension) with the key in ``app.config``."""
    made: list[tuple[Flask, SQLAlchemy]] = []

    def factory(key: Any = None, *, testing: bool = True) -> tuple[Flask, SQLAlchemy, Any]:
        app = Flask(f"crypto_test_{len(made)}")
        app.config.update(TESTING=testing, SQLALCHEMY_DATABASE_URI=database_url, TRAKKR_WEBHOOKS_ENCRYPTION_KEY=key)
        db = SQLAlchemy()
        db.init_app(app)
        model = secret_model(db)
        with app.app_context():
            db.create_all()
        made.append((app, db))
        return app, db, model

    yield factory
    for app, db in made:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def raw_values(app: Flask, db: SQLAlchemy, column: str = "token") -> dict[str, Any]:
    """name -> the text stored in ``column``, read with plain SQL (no type processing)."""
    with app.app_context():
        rows = db.session.execute(sa.text(f"SELECT name, {column} FROM {TABLE}")).all()
    return dict(rows)


def read(app: Flask, model: Any, name: str, column: str = "token") -> Any:
    with app.app_context():
        return getattr(model.query.filter_by(name=name).one(), column)


def write(app: Flask, db: SQLAlchemy, model: Any, **rows: Any) -> None:
    with app.app_context():
        for name, token in rows.items():
            db.session.add(model(name=name, token=token))
        db.session.commit()


def insert_raw(app: Flask, db: SQLAlchemy, name: str, stored: str) -> None:
    """Write a stored value as it is (a legacy row from before a key existed)."""
    with app.app_context():
        db.session.execute(sa.text(f"INSERT INTO {TABLE} (name, token) VALUES (:n, :t)"), {"n": name, "t": stored})
        db.session.commit()


# -- keys -------------------------------------------------------------------------------------


def test_generate_key_makes_distinct_valid_fernet_keys():
    first, second = crypto.generate_key(), crypto.generate_key()
    assert first != second
    assert isinstance(first, str) and len(first) == 44
    Fernet(first)  # valid: does not raise
    assert crypto.parse_keys(first) == (first,)


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, ()),
        ("", ()),
        ([], ()),
        (OLD, (OLD,)),
        (OLD.encode(), (OLD,)),
        (f" {NEW} , {OLD} ", (NEW, OLD)),
        (f"{NEW},{OLD},", (NEW, OLD)),
        ([NEW, OLD.encode()], (NEW, OLD)),
        ((NEW, NEW, OLD), (NEW, OLD)),
    ],
)
def test_parse_keys_accepts_string_comma_list_bytes(value, expected):
    assert crypto.parse_keys(value) == expected


@pytest.mark.parametrize("value", ["not-a-key", f"{NEW},short", [NEW, "x" * 44], "A" * 43])
def test_malformed_key_is_refused_without_echoing_it(value):
    with pytest.raises(ValueError) as info:
        crypto.parse_keys(value)
    message = str(info.value)
    assert "TRAKKR_WEBHOOKS_ENCRYPTION_KEY" in message
    assert "is not a valid Fernet key" in message
    assert "generate-key" in message
    bad = value[-1] if isinstance(value, list) else value.split(",")[-1]
    assert bad not in message


def test_key_ring_round_trip():
    ring = KeyRing(OLD)
    for plaintext in ["tok_123", "", "pässwörd ✓", "fernet:looks-like-a-marker", "x" * 5000]:
        stored = ring.encrypt(plaintext)
        assert stored.startswith("fernet:")
        assert plaintext not in stored[len("fernet:") :] or plaintext == ""
        assert ring.decrypt(stored) == plaintext
    # Randomised: the same plaintext never gives the same token twice.
    assert ring.encrypt("same") != ring.encrypt("same")


def test_wrong_key_fails_clearly():
    stored = KeyRing(OLD).encrypt("tok_123")
    with pytest.raises(DecryptionError) as info:
        KeyRing(OTHER).decrypt(stored)
    message = str(info.value)
    assert "cannot decrypt a stored webhook credential" in message
    assert "TRAKKR_WEBHOOKS_ENCRYPTION_KEY" in message
    assert "rotate-key" in message
    assert "tok_123" not in message


def test_tampered_token_fails_clearly():
    stored = KeyRing(OLD).encrypt("tok_123")
    tampered = stored[:-6] + ("AAAAAA" if not stored.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(DecryptionError):
        KeyRing(OLD).decrypt(tampered)


def test_multifernet_rotation_at_the_ring_level():
    old_value = KeyRing(OLD).encrypt("secret")
    both = KeyRing(f"{NEW},{OLD}")
    assert both.decrypt(old_value) == "secret"  # an old key still decrypts
    assert not both.is_current(old_value)
    rotated = both.encrypt(both.decrypt(old_value))
    assert both.is_current(rotated)
    only_new = KeyRing(NEW)
    assert only_new.decrypt(rotated) == "secret"  # old key removed: still reads
    with pytest.raises(DecryptionError):
        only_new.decrypt(old_value)  # ...but an un-rotated value would not


def test_legacy_plaintext_is_read_and_never_current():
    ring = KeyRing(OLD)
    assert ring.decrypt("legacy-token") == "legacy-token"
    assert ring.decrypt("plain:fernet:abc") == "fernet:abc"
    assert not ring.is_current("legacy-token")


def test_no_key_stores_plaintext_and_escapes_markers():
    with crypto.using_keys(None):
        assert crypto.encrypt_value("tok") == "tok"
        assert crypto.encrypt_value("fernet:tok") == "plain:fernet:tok"
        assert crypto.encrypt_value("plain:tok") == "plain:plain:tok"
        assert crypto.decrypt_value("plain:fernet:tok") == "fernet:tok"
        assert crypto.decrypt_value("tok") == "tok"
        with pytest.raises(DecryptionError, match="TRAKKR_WEBHOOKS_ENCRYPTION_KEY is not set"):
            crypto.decrypt_value(KeyRing(OLD).encrypt("tok"))


# -- where the key comes from ---------------------------------------------------------------------


def test_no_app_context_and_no_override_is_a_clear_error():
    with pytest.raises(RuntimeError, match="app context"):
        crypto.current_keyring()


def test_using_keys_overrides_and_restores():
    with crypto.using_keys(f"{NEW},{OLD}") as ring:
        assert crypto.current_keyring() is ring
        assert ring.keys == (NEW, OLD)
        with crypto.using_keys(None):
            assert crypto.current_keyring() is None
        assert crypto.current_keyring() is ring
    with pytest.raises(RuntimeError):
        crypto.current_keyring()


def test_key_comes_from_the_extension_settings(make_app):
    app = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=[NEW, OLD])
    with app.app_context():
        ring = crypto.current_keyring()
        assert ring is not None and ring.keys == (NEW, OLD)
        assert crypto.current_keyring() is ring  # parsed once, cached


def test_key_comes_from_app_config_without_the_extension(plain_app):
    app, _, _ = plain_app(OLD)
    with app.app_context():
        assert crypto.current_keyring().keys == (OLD,)


# -- the startup rule --------------------------------------------------------------------------------


def _settings(key: Any):
    return load_settings({"TRAKKR_WEBHOOKS_ENCRYPTION_KEY": key})


def test_check_key_refuses_a_production_app_without_a_key():
    app = Flask("prod")
    assert not app.testing and not app.debug
    with pytest.raises(RuntimeError) as info:
        crypto.check_key(_settings(None), app)
    message = str(info.value)
    assert "TRAKKR_WEBHOOKS_ENCRYPTION_KEY is not set" in message
    assert 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"' in message
    assert "flask webhooks generate-key" in message


@pytest.mark.parametrize("mode", ["testing", "debug"])
def test_check_key_allows_testing_and_debug_without_a_key(mode):
    app = Flask(mode)
    setattr(app, mode, True)
    assert crypto.check_key(_settings(None), app) is None
    assert crypto.check_key(_settings(""), app) is None


def test_check_key_accepts_a_key_in_production():
    assert crypto.check_key(_settings(f"{NEW},{OLD}"), Flask("prod")) is None


def test_check_key_refuses_a_malformed_key_even_in_testing():
    app = Flask("t")
    app.testing = True
    with pytest.raises(ValueError, match="key #1 is not a valid Fernet key"):
        crypto.check_key(_settings("nope"), app)


# -- the column type in a real database ---------------------------------------------------------------


def test_stored_value_is_not_the_plaintext(plain_app, is_postgres):
    app, db, Secret = plain_app(OLD)
    write(app, db, Secret, a="tok_live_123456")
    stored = raw_values(app, db)["a"]
    assert stored.startswith("fernet:")
    assert "tok_live_123456" not in stored
    assert Fernet(OLD).decrypt(stored[len("fernet:") :].encode()) == b"tok_live_123456"
    assert read(app, Secret, "a") == "tok_live_123456"
    with app.app_context():
        assert db.engine.dialect.name == ("postgresql" if is_postgres else "sqlite")


def test_none_stays_null(plain_app):
    app, db, Secret = plain_app(OLD)
    write(app, db, Secret, a=None)
    assert raw_values(app, db)["a"] is None
    assert read(app, Secret, "a") is None


def test_update_re_encrypts(plain_app):
    app, db, Secret = plain_app(OLD)
    write(app, db, Secret, a="first")
    with app.app_context():
        row = Secret.query.filter_by(name="a").one()
        row.token = "second"
        db.session.commit()
    assert read(app, Secret, "a") == "second"
    assert "second" not in raw_values(app, db)["a"]


@pytest.mark.parametrize(
    "reader_key, message",
    [
        (OTHER, "cannot decrypt a stored webhook credential with the 1 key"),
        (None, "is encrypted but TRAKKR_WEBHOOKS_ENCRYPTION_KEY is not set"),
    ],
)
def test_reading_with_a_wrong_or_missing_key_fails_clearly(plain_app, reader_key, message):
    app, db, Secret = plain_app(OLD)
    write(app, db, Secret, a="tok")
    reader, _, ReaderSecret = plain_app(reader_key)
    with pytest.raises(DecryptionError, match=message):
        read(reader, ReaderSecret, "a")


def test_legacy_plaintext_rows_still_read(plain_app):
    app, db, Secret = plain_app(OLD)
    insert_raw(app, db, "legacy", "tok_from_before_the_key")
    assert read(app, Secret, "legacy") == "tok_from_before_the_key"


def test_without_a_key_values_are_stored_as_is_and_read_back(plain_app):
    app, db, Secret = plain_app(None)
    write(app, db, Secret, a="tok", b="fernet:not-a-token")
    assert raw_values(app, db) == {"a": "tok", "b": "plain:fernet:not-a-token"}
    assert read(app, Secret, "a") == "tok"
    assert read(app, Secret, "b") == "fernet:not-a-token"


def test_worker_thread_with_an_app_context_finds_the_key(plain_app):
    """A worker has an app context but no request: the key is found through the app."""
    app, db, Secret = plain_app(OLD)
    write(app, db, Secret, a="tok")
    seen: list[Any] = []

    def work() -> None:
        with app.app_context():
            seen.append(Secret.query.filter_by(name="a").one().token)
            db.session.add(Secret(name="b", token="from-worker"))
            db.session.commit()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert seen == ["tok"]
    assert raw_values(app, db)["b"].startswith("fernet:")


def test_each_app_uses_its_own_key(make_app):
    """Two host apps on one database: each encrypts with the key of its own settings."""
    first = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=OLD, own_db=True)
    FirstSecret = secret_model(first.db)
    with first.app_context():
        first.db.create_all()
    write(first, first.db, FirstSecret, a="tok")
    second = make_app(TRAKKR_WEBHOOKS_ENCRYPTION_KEY=OTHER, own_db=True)
    SecondSecret = secret_model(second.db)
    with pytest.raises(DecryptionError):
        read(second, SecondSecret, "a")
    assert read(first, FirstSecret, "a") == "tok"


def test_equality_filters_never_match_encrypted_values(plain_app):
    """Documented limitation: randomised encryption means no lookups by credential."""
    app, db, Secret = plain_app(OLD)
    write(app, db, Secret, a="tok")
    with app.app_context():
        assert Secret.query.filter(Secret.token == "tok").count() == 0


# -- rotation -------------------------------------------------------------------------------------------


def test_rotate_re_encrypts_every_credential_with_the_first_key(plain_app):
    old_app, db, Secret = plain_app(OLD)
    write(old_app, db, Secret, a="tok_a", b="tok_b", empty=None)
    with old_app.app_context():
        db.session.add(Secret(name="pw", token=None, password="hunter2"))
        db.session.commit()
    insert_raw(old_app, db, "legacy", "tok_legacy")
    before = raw_values(old_app, db)

    rotated_app, rdb, RSecret = plain_app(f"{NEW},{OLD}")
    assert read(rotated_app, RSecret, "a") == "tok_a"  # new first, old still decrypts
    with rotated_app.app_context():
        counts = crypto.rotate(rdb.session, [RSecret])
    assert counts == {f"{TABLE}.token": 3, f"{TABLE}.password": 1}

    after = raw_values(rotated_app, rdb)
    assert after["empty"] is None
    for name in ("a", "b", "legacy"):
        assert after[name] != before[name]
        assert after[name].startswith("fernet:")
        assert Fernet(NEW).decrypt(after[name][len("fernet:") :].encode()).decode() == f"tok_{name}"
    assert "hunter2" not in raw_values(rotated_app, rdb, "password")["pw"]

    # Old key removed: everything still reads.
    new_app, ndb, NSecret = plain_app(NEW)
    assert [read(new_app, NSecret, n) for n in ("a", "b", "legacy")] == ["tok_a", "tok_b", "tok_legacy"]
    assert read(new_app, NSecret, "pw", "password") == "hunter2"
    # And a second rotation has nothing left to do.
    with new_app.app_context():
        assert sum(crypto.rotate(ndb.session, [NSecret]).values()) == 0


def test_rotate_with_explicit_keys_and_a_models_bundle(plain_app):
    app, db, Secret = plain_app(None)
    write(app, db, Secret, a="tok")  # written without a key: plaintext

    @dataclasses.dataclass(frozen=True)
    class Bundle:  # shaped like models_for(db): a dataclass of model classes
        Secret: Any

    with app.app_context():
        assert crypto.encrypted_columns(Bundle(Secret))[0][0].name == TABLE
        counts = crypto.rotate(db.session, Bundle(Secret), keys=NEW)
    assert counts[f"{TABLE}.token"] == 1
    assert raw_values(app, db)["a"].startswith("fernet:")
    with crypto.using_keys(NEW), app.app_context():
        assert Secret.query.filter_by(name="a").one().token == "tok"


def test_rotate_refuses_without_a_key(plain_app):
    app, db, Secret = plain_app(None)
    with app.app_context():
        with pytest.raises(RuntimeError, match="cannot rotate: TRAKKR_WEBHOOKS_ENCRYPTION_KEY is not set"):
            crypto.rotate(db.session, [Secret])


def test_rotate_without_the_old_key_fails_and_changes_nothing(plain_app):
    app, db, Secret = plain_app(OLD)
    write(app, db, Secret, a="tok")
    before = raw_values(app, db)
    new_only, ndb, NSecret = plain_app(NEW)
    with new_only.app_context():
        with pytest.raises(DecryptionError):
            crypto.rotate(ndb.session, [NSecret])
        ndb.session.rollback()
    assert raw_values(app, db) == before


def test_encrypted_columns_of_a_table_and_of_unencrypted_models(plain_app):
    _, db, Secret = plain_app(OLD)
    assert [c.name for c in crypto.encrypted_columns(Secret.__table__)[0][1]] == ["token", "password"]

    class Plain(db.Model):
        __tablename__ = "crypto_test_plain"
        id = sa.Column(sa.Integer, primary_key=True)

    assert crypto.encrypted_columns([Plain]) == []
