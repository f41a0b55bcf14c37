"""Who is signed in: Flask-Login around the User model.

The session stores the user id plus a tag of the password hash and the
account's session epoch (:func:`session_tag`), so a password reset, or signing
out (which moves the epoch on), ends every session of that user, copied
cookies included.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Request, g
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager, current_user
from flask_login import login_required as _login_required

from fieldstation.errors import NotFound
from fieldstation.extensions import db
from fieldstation.models import User
from fieldstation.points import plain_int

login_manager = LoginManager()
F = TypeVar("F", bound=Callable[..., Any])


def login_required(view: F) -> F:
    """Flask-Login's decorator, typed: signed-out visitors go to the sign-in page."""
    return cast(F, _login_required(view))


class SessionUser:
    """The signed-in user as Flask-Login wants it."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        """The id and a tag of the password hash and session epoch: a new password, or signing
        out (which moves the epoch on), ends every session of the account, copied cookies too."""
        return f"{self.user.id}:{session_tag(self.user)}"


def session_tag(user: User) -> str:
    """What a session cookie holds of the account besides its id (not the hash itself)."""
    return hashlib.sha256(f"{user.password_hash}|{user.session_epoch}".encode()).hexdigest()[:24]


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer built once per secret key.

    Flask builds a new serializer for every request, also for devices that
    never send a cookie; on a single-reading ``/update`` that was a tenth of
    the request's cost.
    """

    _cached: tuple[object, Any] | None = None

    def get_signing_serializer(self, app: Flask) -> Any:
        """The serializer for ``app``'s current secret key (rebuilt if the key changes)."""
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = self._cached
        if cached is None or cached[0] != key:
            cached = self._cached = (key, super().get_signing_serializer(app))
        return cached[1]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """No session for a device or API request that sends no cookie (it cannot be signed in).

        Opening an empty session, noting that Flask-Login looked at it and adding
        ``Vary: Cookie`` on the way out were a sixth of Flask's work on every
        ``/update``. Dashboard pages keep a real session even on the first visit:
        they write the CSRF token and flashed messages into it.
        """
        if "HTTP_COOKIE" not in request.environ and _sessionless(request.path):
            return self.make_null_session(app)
        return super().open_session(app, request)


#: First path segments of the device and API endpoints, which never write to a session.
_API_ROOTS = frozenset({"update", "update.json", "update.xml", "write", "query", "ping", "api", "channels"})


def _sessionless(path: str) -> bool:
    """A device/API path; the dashboard's embeddable chart (``/channels/<id>/charts/…``) is a page."""
    root = path.split("/", 2)[1] if path.startswith("/") else ""
    return root in _API_ROOTS and "/charts/" not in path


def init_login(app: Flask) -> None:
    """Bind Flask-Login to the app; pages that need a user redirect to the sign-in page."""
    app.session_interface = CookieSessions()
    login_manager.init_app(app)
    login_manager.login_view = "dashboard.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"
    login_manager.user_loader(_load)
    app.before_request(_forget_cached_user)


def _forget_cached_user() -> None:
    """Load the user and the CSRF token afresh for each request.

    Flask-Login caches the user, and Flask-WTF the signed CSRF token, on ``g``,
    which lives in the app context; when several requests share one app context
    (the test client inside an app context, scripts) the first request's would
    otherwise carry over, the token even past a session cleared at sign-in.
    """
    g.pop("_login_user", None)
    g.pop("csrf_token", None)


def _load(session_id: str) -> SessionUser | None:
    user_id, _, tag = session_id.partition(":")
    number = plain_int(user_id)
    if number is None:
        return None
    user = db.session.get(User, number)
    if user is None or user.disabled_at is not None or not hmac.compare_digest(session_tag(user), tag):
        return None
    return SessionUser(user)


def signed_in() -> User | None:
    """The signed-in user, or None."""
    who: Any = current_user
    return who.user if who.is_authenticated else None


def me() -> User:
    """The signed-in user (views behind ``login_required``)."""
    user = signed_in()
    if user is None:  # pragma: no cover - login_required runs first
        raise NotFound("not signed in")
    return user


def require_admin() -> User:
    """The signed-in admin.

    :raise NotFound: not an admin (the admin pages do not exist for others).
    """
    user = me()
    if not user.is_admin:
        raise NotFound("page not found")
    return user
