"""My password, and the admins' disable/enable/delete of accounts.

A password someone else knows (the first admin's one-time password, one an
admin set) must be changed before any other page: every dashboard page but the
change form and signing out redirects there until it is.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_user
from werkzeug.wrappers import Response

from fieldstation import accounts, manage
from fieldstation.dashboard.blueprint import bp
from fieldstation.dashboard.forms import ActionForm, DeleteUserForm, OwnPasswordForm
from fieldstation.dashboard.session import SessionUser, login_required, me, require_admin, signed_in
from fieldstation.errors import FieldstationError

#: Pages a user with a password to change may still open.
_BEFORE_CHANGE = {"dashboard.change_password", "dashboard.logout", "dashboard.static", "dashboard.login"}


@bp.before_request
def _force_password_change() -> Response | None:
    """Send a user whose password someone else knows to the change form first."""
    if request.endpoint in _BEFORE_CHANGE:
        return None
    user = signed_in()
    if user is not None and user.must_change_password:
        return redirect(url_for("dashboard.change_password"))
    return None


@bp.route("/dashboard/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> Response | tuple[str, int]:
    """Change my password (every user); the current one proves it is me."""
    user = me()
    form = OwnPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            accounts.change_own_password(user, form.current.data or "", form.password.data or "")
        except FieldstationError as exc:
            flash(f"{exc.message[:1].upper()}{exc.message[1:]}.", "error")
            status = exc.status
        else:
            login_user(SessionUser(user))  # the new password ends every other session, not this one
            flash("Password changed; your other sessions are signed out.", "success")
            return redirect(url_for("dashboard.my_channels"))
    elif form.errors:
        status = 400
    return render_template("dashboard/password.html", form=form, forced=user.must_change_password), status


@bp.post("/dashboard/users/<int:user_id>/disable")
@login_required
def disable_user(user_id: int) -> Response:
    """Disable an account: no sign-in, its user key refused; its channels keep taking readings."""
    admin = require_admin()
    user = manage.user_by_id(user_id)
    if ActionForm().validate_on_submit():
        try:
            accounts.disable(user, admin)
        except FieldstationError as exc:
            flash(f"{exc.message[:1].upper()}{exc.message[1:]}.", "error")
        else:
            flash(f"Disabled {user.username}: they cannot sign in; their channels keep working.", "success")
    return redirect(url_for("dashboard.users"))


@bp.post("/dashboard/users/<int:user_id>/enable")
@login_required
def enable_user(user_id: int) -> Response:
    """Let a disabled account sign in again."""
    require_admin()
    user = manage.user_by_id(user_id)
    if ActionForm().validate_on_submit():
        accounts.enable(user)
        flash(f"Enabled {user.username}.", "success")
    return redirect(url_for("dashboard.users"))


@bp.route("/dashboard/users/<int:user_id>/delete", methods=["GET", "POST"])
@login_required
def delete_user(user_id: int) -> Response | tuple[str, int]:
    """Ask first, saying what happens to their channels; then delete the account."""
    admin = require_admin()
    user = manage.user_by_id(user_id)
    others = [u for u in manage.users() if u.id != user.id]
    form = DeleteUserForm()
    form.heir.choices = [("", "delete them with the account")] + [
        (str(u.id), f"hand them over to {u.username}") for u in others
    ]
    status = 200
    if form.validate_on_submit():
        heir = manage.user_by_id(int(form.heir.data)) if form.heir.data else None
        said = " ".join(accounts.hand_over_plan(user, heir))
        try:
            accounts.delete(user, admin, heir)
        except FieldstationError as exc:
            flash(f"{exc.message[:1].upper()}{exc.message[1:]}.", "error")
            status = exc.status
        else:
            flash(f"Deleted {user.username}. {said}", "success")
            return redirect(url_for("dashboard.users"))
    channels = manage.channels_of(user)
    return render_template("dashboard/user_delete.html", form=form, user=user, channels=channels), status
