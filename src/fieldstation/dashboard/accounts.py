"""Signing in and out, and the admins' user list."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import login_user, logout_user
from werkzeug.wrappers import Response

from fieldstation import accounts, manage
from fieldstation.dashboard.blueprint import bp
from fieldstation.dashboard.forms import ActionForm, LoginForm, PasswordForm, UserForm
from fieldstation.dashboard.session import SessionUser, login_required, require_admin, signed_in
from fieldstation.errors import FieldstationError, RateLimited


@bp.route("/dashboard/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """The sign-in form; a wrong name or password gets one message for both."""
    if signed_in() is not None:
        return redirect(url_for("dashboard.my_channels"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        try:
            user = manage.authenticate(
                form.username.data or "", form.password.data or "", request.remote_addr
            )
        except RateLimited as exc:
            flash(f"{exc.message[:1].upper()}{exc.message[1:]}.", "error")
            return render_template("dashboard/login.html", form=form), 429
        if user is not None and user.disabled_at is not None:  # told only with the right password
            flash("This account is disabled; ask an administrator.", "error")
            return render_template("dashboard/login.html", form=form), 403
        if user is not None:
            session.clear()  # nothing of the signed-out visit (its CSRF token) carries into the new session
            login_user(SessionUser(user))
            return redirect(_safe_next(form.next.data))
        flash("Wrong username or password.", "error")
        return render_template("dashboard/login.html", form=form), 401
    return render_template("dashboard/login.html", form=form)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: ``?next=https://evil.example`` must not redirect off-site."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("dashboard.my_channels")


@bp.post("/dashboard/logout")
def logout() -> Response:
    """Sign out everywhere (a POST with a CSRF token, so another site cannot sign you out).

    The account's session epoch moves on, so every cookie of it stops working,
    this browser's and any copy of it alike.
    """
    user = signed_in()
    if user is not None:
        manage.end_sessions(user)
    logout_user()
    session.clear()
    flash("Signed out, on every device.", "info")
    return redirect(url_for("dashboard.login"))


@bp.route("/dashboard/users", methods=["GET", "POST"])
@login_required
def users() -> Response | tuple[str, int] | str:
    """Admins list users and create new ones."""
    require_admin()
    form = UserForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = manage.create_user(
                form.username.data or "", form.password.data or "", is_admin=bool(form.is_admin.data)
            )
            accounts.require_new_password(user)  # the admin knows it
        except FieldstationError as exc:
            flash(exc.message, "error")
            status = exc.status
        else:
            flash(f"Created user {user.username}.", "success")
            return redirect(url_for("dashboard.users"))
    elif form.errors:
        status = 400
    everyone = manage.users()
    return render_template(
        "dashboard/users.html", form=form, users=everyone, password_form=PasswordForm(), action=ActionForm()
    ), status


@bp.post("/dashboard/users/<int:user_id>/password")
@login_required
def reset_password(user_id: int) -> Response:
    """Admins set a new password for a user (that user's other sessions end)."""
    require_admin()
    user = manage.user_by_id(user_id)
    form = PasswordForm()
    if not form.validate_on_submit():
        flash("Passwords must be at least 8 characters.", "error")
    else:
        accounts.set_password_for(user, form.password.data or "")
        flash(f"New password set for {user.username}; they change it at their next sign-in.", "success")
    return redirect(url_for("dashboard.users"))
