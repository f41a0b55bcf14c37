"""Account life cycle beyond creation: forced and own password changes, disabling and deleting.

The rules the CLI and the dashboard share (``manage`` creates accounts and checks passwords).
Deleting an account hands its channels over to another account (with their
write and read keys, so its devices keep writing) or deletes them with it; which
one happens is said before the admin confirms.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash

from fieldstation import manage
from fieldstation.errors import BadRequest, Conflict, Forbidden
from fieldstation.extensions import db
from fieldstation.models import ApiKey, Channel, KeyKind, User
from fieldstation.models.base import utcnow


def require_new_password(user: User) -> None:
    """Make the user change their password at the next sign-in (someone else knows it)."""
    user.must_change_password = True
    db.session.commit()


def set_password_for(user: User, password: str) -> None:
    """An admin's new password for someone else: they change it at their next sign-in."""
    manage.set_password(user, password)
    require_new_password(user)


def change_own_password(user: User, current: str, new: str) -> None:
    """The user's own change: the current password proves it is them.

    :raise BadRequest: the current password is wrong, the new one too short or the same.
    """
    if not check_password_hash(user.password_hash, current):
        raise BadRequest("the current password is wrong")
    if new == current:
        raise BadRequest("the new password must differ from the current one")
    manage.set_password(user, new)
    user.must_change_password = False
    db.session.commit()


def _active_admins() -> int:
    count = db.session.scalar(
        select(func.count()).select_from(User).where(User.is_admin.is_(True), User.disabled_at.is_(None))
    )
    return int(count or 0)


def _check_not_self_or_last_admin(user: User, by: User | None, what: str) -> None:
    """``by`` is the admin at the dashboard, or None at the command line."""
    if by is not None and user.id == by.id:
        raise Forbidden(f"you cannot {what} your own account")
    if user.is_admin and user.disabled_at is None and _active_admins() <= 1:
        raise Conflict(f"cannot {what} the last active administrator")


def disable(user: User, by: User | None) -> None:
    """Disable an account: no sign-in, its sessions end, its user key is revoked; channels keep working.

    Revoking the user key (rather than checking the account on every key use) keeps
    the key lookups of the read and write paths as they are; enabled again, the
    user makes a new key.
    """
    _check_not_self_or_last_admin(user, by, "disable")
    if user.disabled_at is None:
        user.disabled_at = utcnow()
        db.session.execute(
            update(User).where(User.id == user.id).values(session_epoch=User.session_epoch + 1)
        )
        db.session.execute(
            update(ApiKey)
            .where(ApiKey.user_id == user.id, ApiKey.kind == KeyKind.USER, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        db.session.commit()


def enable(user: User) -> None:
    """Let a disabled account sign in again."""
    user.disabled_at = None
    db.session.commit()


def hand_over_plan(user: User, heir: User | None) -> list[str]:
    """What deleting ``user`` does to their channels, one sentence each (shown before confirming)."""
    channels = manage.channels_of(user)
    if not channels:
        return [f"{user.username} owns no channels."]
    names = ", ".join(channel.name for channel in channels)
    if heir is None:
        return [f"Their {len(channels)} channel(s) and all their data are deleted: {names}."]
    return [f"Their {len(channels)} channel(s) go to {heir.username}, with their data and keys: {names}."]


def delete(user: User, by: User | None, heir: User | None) -> None:
    """Delete an account; its channels go to ``heir`` (keys included) or are deleted with it.

    :raise Conflict: the heir already has a channel of the same name (nothing changes then).
    """
    _check_not_self_or_last_admin(user, by, "delete")
    if heir is not None and heir.id == user.id:
        raise BadRequest("hand the channels to another account")
    channels = manage.channels_of(user)
    if heir is not None:
        taken = set(db.session.scalars(select(Channel.name).where(Channel.owner_id == heir.id)))
        clash = sorted(channel.name for channel in channels if channel.name in taken)
        if clash:
            raise Conflict(f"{heir.username} already has a channel named {clash[0]!r}: rename one first")
        ids = [channel.id for channel in channels]
        db.session.execute(update(Channel).where(Channel.id.in_(ids)).values(owner_id=heir.id))
        db.session.execute(  # the channel's keys move too: its devices keep writing
            update(ApiKey).where(ApiKey.channel_id.in_(ids)).values(user_id=heir.id)
        )
        db.session.expire(user, ["channels"])
    else:
        for channel in channels:
            db.session.delete(channel)
    db.session.delete(user)
    db.session.commit()
