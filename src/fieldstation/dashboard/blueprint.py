"""The dashboard's blueprint and what holds for all its pages: CSRF checks, framing, error pages.

Pages live under ``/dashboard``; the embeddable chart keeps ThingSpeak's URL
``/channels/<id>/charts/<n>``. Every form carries a CSRF token (Flask-WTF),
checked for every POST of this blueprint only, so that device endpoints such
as ``/update`` stay token-free.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.wrappers import Response
from wtforms.validators import ValidationError

from fieldstation.errors import BadRequest, FieldstationError
from fieldstation.extensions import db

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)


@bp.before_request
def _check_csrf() -> tuple[str, int] | None:
    """Refuse a POST without this session's CSRF token (a forged cross-site form).

    Over plain HTTP with the HTTPS-only session cookie, the browser never kept
    the cookie: that is explained, with the setting that allows it, instead.
    """
    if request.method != "POST" or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return None
    try:
        validate_csrf(request.form.get("csrf_token") or request.headers.get("X-CSRFToken"))
    except (ValidationError, CSRFError) as exc:
        from fieldstation.dashboard.plainhttp import cookie_dropped_over_http, explain

        if cookie_dropped_over_http():
            return explain()
        raise BadRequest(f"form expired or forged: {exc}", code="csrf") from None
    return None


#: Endpoints other sites may frame: ThingSpeak's embeddable chart.
FRAMEABLE = {"dashboard.embed_chart"}


@bp.after_request
def _page_headers(response: Response) -> Response:
    """No other site frames a dashboard page (clickjacking: a framed Delete button is still a
    click), and pages, which may show a key once, are not kept in caches."""
    if request.endpoint not in FRAMEABLE:
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    if response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(FieldstationError)
def _error_page(exc: FieldstationError) -> tuple[str, int]:
    """Dashboard errors are pages, not JSON."""
    db.session.rollback()
    return render_template("dashboard/error.html", error=exc), exc.status


@bp.get("/")
def home() -> Response:
    """The front door: My channels (or the sign-in page on the way there)."""
    return redirect(url_for("dashboard.my_channels"))
