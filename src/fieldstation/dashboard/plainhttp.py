"""Signing in over plain HTTP from another machine: why it fails, and the one setting that allows it.

In production the session cookie is ``Secure`` (HTTPS only). A browser keeps
such a cookie from ``http://127.0.0.1`` or ``http://localhost`` (secure contexts),
but not from ``http://192.168.1.20``: the sign-in form's CSRF token, kept in the
session, is then missing when the form comes back. Rather than "form expired or
forged", the person gets the reason and the fix.
"""

from __future__ import annotations

from flask import current_app, render_template, request


def cookie_dropped_over_http() -> bool:
    """The POST came over plain HTTP without the session cookie, which is HTTPS-only here."""
    if not current_app.config.get("SESSION_COOKIE_SECURE") or request.is_secure:
        return False
    return current_app.config.get("SESSION_COOKIE_NAME", "session") not in request.cookies


def explain() -> tuple[str, int]:
    """The sign-in page with the explanation shown (400: the form was not taken)."""
    from fieldstation.dashboard.forms import LoginForm

    form = LoginForm(formdata=None, next=request.form.get("next", ""))
    return render_template("dashboard/login.html", form=form, cookie_dropped=True), 400
