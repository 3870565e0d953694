"""myapp.py: a Flask app that sends signed webhooks with flask-trakkr-webhooks."""

import os

from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy

from flask_trakkr_webhooks import TrakkrWebhooks

db = SQLAlchemy()
webhooks = TrakkrWebhooks()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get("MYAPP_DATABASE_URL", "sqlite:///myapp.db"),
        TRAKKR_WEBHOOKS_REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        TRAKKR_WEBHOOKS_ENCRYPTION_KEY=os.environ["TRAKKR_WEBHOOKS_ENCRYPTION_KEY"],
        # Development only: lets webhooks point at receivers on this machine (http://127.0.0.1).
        TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True,
    )
    db.init_app(app)
    webhooks.init_app(app, db)  # models on your db, the /webhooks API, `flask webhooks` commands

    @webhooks.access_policy
    def may_manage(brand_id: str) -> bool:
        """Who may manage a brand's webhooks: your own rule (here, one admin token)."""
        return request.headers.get("Authorization") == f"Bearer {os.environ['MYAPP_ADMIN_TOKEN']}"

    @app.post("/brands/<brand_id>/scores")
    def record_score(brand_id: str) -> dict[str, str]:
        """Your code: something happens, and the brand's webhooks are told."""
        score = request.get_json()
        event_id = webhooks.emit(
            "visibility_changed",
            brand={"id": brand_id, "name": "Acme", "website": "https://acme.example"},
            data={"previous_score": score["previous"], "current_score": score["current"]},
        )
        db.session.commit()  # deliveries are queued when your transaction commits
        return {"event_id": event_id}

    with app.app_context():
        db.create_all()
    return app
