"""The portal behind a simple session login: sign in with a brand's API key, see that brand's webhooks.

The host's own login, as any app has one: the portal itself knows nothing of it. The access
policy (:func:`.auth.can_manage`) reads the signed-in brand from the session on portal pages,
and the portal's brand picker lists that brand (:func:`brands`).
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template_string, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from flask_trakkr_webhooks.portal import BLUEPRINT_NAME
from flask_trakkr_webhooks.portal.security import CSRFError, add_headers, check_csrf, csrf_token

from . import db
from .models import Brand, hash_key

bp = Blueprint("example_login", __name__)

#: The session key of the signed-in brand's id.
SESSION_BRAND = "brand_id"

LOGIN_PAGE = """{% extends "trakkr_webhooks/portal/base.html" %}
{% block title %}Sign in{% endblock %}
{% block nav %}{% endblock %}
{% block content %}
<h1>Sign in to your webhooks</h1>
{% if error %}<p class="flash flash-error" role="alert"><strong>Error:</strong> {{ error }}</p>{% endif %}
<form method="post" action="{{ url_for('example_login.login') }}">
  <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
  <input type="hidden" name="next" value="{{ next }}">
  <p><label for="api_key">Your brand's API key</label><br>
  <input id="api_key" name="api_key" type="password" autocomplete="off" required size="50"></p>
  <p><button type="submit">Sign in</button></p>
</form>
{% endblock %}
"""


def signed_in_brand() -> Brand | None:
    """The brand signed in with this session, if any."""
    brand_id = session.get(SESSION_BRAND)
    return db.session.get(Brand, brand_id) if isinstance(brand_id, str) else None


def require_login() -> BaseResponse | None:
    """Before every portal page: send a visitor without a session to the sign-in page."""
    if (
        request.blueprint == BLUEPRINT_NAME
        and signed_in_brand() is None
        and request.endpoint != f"{BLUEPRINT_NAME}.static"
    ):
        asked = request.full_path if request.query_string else request.path
        return redirect(url_for("example_login.login", next=asked))
    return None


def brands() -> list[tuple[str, str]]:
    """The portal's brand picker: the signed-in brand."""
    brand = signed_in_brand()
    return [(brand.id, brand.name)] if brand else []


def _page(error: str | None = None, status: int = 200) -> Response:
    html = render_template_string(LOGIN_PAGE, error=error, next=request.values.get("next", ""), csrf_token=csrf_token)
    return add_headers(Response(html, status=status, mimetype="text/html"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse:
    """``GET``: the sign-in form; ``POST``: check the key, remember the brand, open the portal."""
    if request.method == "GET":
        return _page()
    try:
        check_csrf()
    except CSRFError as exc:  # an old form
        return _page(str(exc), 400)
    key = request.form.get("api_key", "").strip()
    brand = db.session.execute(db.select(Brand).filter_by(api_key_hash=hash_key(key))).scalar_one_or_none()
    if brand is None:
        return _page("Unknown API key.", 401)
    session.clear()
    session[SESSION_BRAND] = brand.id
    target = request.form.get("next", "")
    if not target.startswith("/") or target.startswith("//") or target == url_for(f"{BLUEPRINT_NAME}.index"):
        target = url_for(f"{BLUEPRINT_NAME}.index", brand_id=brand.id)
    return redirect(target, 303)


@bp.post("/logout")
def logout() -> BaseResponse:
    """Forget the session's brand."""
    try:
        check_csrf()
    except CSRFError as exc:
        return _page(str(exc), 400)
    session.clear()
    return redirect(url_for("example_login.login"), 303)
