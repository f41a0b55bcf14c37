"""The web dashboard: server-rendered pages over the same manage and query modules as the APIs.

Pages live under ``/dashboard``; the embeddable chart keeps ThingSpeak's URL
``/channels/<id>/charts/<n>``. The blueprint and its page-wide rules are in
:mod:`fieldstation.dashboard.blueprint`; each page module attaches its routes to it.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import generate_csrf


def init_app(app: Flask) -> None:
    """Set up sign-in and mount the dashboard (with ``/`` pointing at it)."""
    from fieldstation.dashboard import accounts, channels, filters, keys, people, view  # noqa: F401  (routes)
    from fieldstation.dashboard.blueprint import bp
    from fieldstation.dashboard.session import init_login

    init_login(app)
    app.jinja_env.globals["csrf_token"] = generate_csrf
    app.register_blueprint(bp)
