"""Accounts, channels, fields, keys and device allow-lists: the rules the CLI, API and dashboard share."""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from fieldstation import db as database
from fieldstation import derive, rollups, signin
from fieldstation.auth import generate_key, hash_key
from fieldstation.errors import BadRequest, Conflict, NotFound
from fieldstation.extensions import db
from fieldstation.models import ApiKey, Channel, Device, Field, KeyKind, User
from fieldstation.models.base import utcnow
from fieldstation.models.channels import FIELD_KINDS, MAX_GAP_S, FieldCalibration
from fieldstation.points import UNSTORABLE, normalize_device, plain_int
from fieldstation.timeunits import DAY, SECOND, now_us

MIN_PASSWORD = 8


# -- users -----------------------------------------------------------------------------------


def create_user(username: str, password: str, *, is_admin: bool = False) -> User:
    """Create an account; usernames are unique."""
    username = username.strip()
    if not username or len(username) > 80 or UNSTORABLE.search(username):
        raise BadRequest("username must be 1-80 characters, without control characters")
    _check_password(password)
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists")
    user = User(username=username, password_hash=generate_password_hash(password), is_admin=is_admin)
    db.session.add(user)
    _commit()
    return user


def set_password(user: User, password: str) -> None:
    """Replace a user's password."""
    _check_password(password)
    user.password_hash = generate_password_hash(password)
    _commit()


def authenticate(username: str, password: str, address: str | None = None) -> User | None:
    """The user with these credentials, or None.

    The sign-in throttle (:mod:`fieldstation.signin`) counts wrong passwords by
    name at ``address`` (the client's) and by address, for names that exist and
    names that do not alike; a right one clears the name's count.

    :raise RateLimited: the name or the address is waiting after too many wrong
        passwords; the password is not checked at all then.
    """
    signin.check(username, address)
    storable = not UNSTORABLE.search(username)  # no such name can exist (PostgreSQL cannot compare a NUL)
    user = db.session.scalar(select(User).where(User.username == username)) if storable else None
    # An unknown name costs a hash as a wrong password does: no telling names by time either.
    if check_password_hash(user.password_hash if user else _unmatchable_hash(), password) and user:
        signin.passed(username, address)
        return user
    signin.failed(username, address)
    return None


def end_sessions(user: User) -> None:
    """End every dashboard session of the account (signing out): their cookies are bound to the epoch."""
    db.session.execute(update(User).where(User.id == user.id).values(session_epoch=User.session_epoch + 1))
    _commit()


@functools.cache
def _unmatchable_hash() -> str:
    """A password hash no one knows the password of, made once per process (hashing is slow on purpose)."""
    return generate_password_hash(secrets.token_urlsafe(32))


def get_user(username: str) -> User:
    """Look a user up by name.

    :raise NotFound: no such user.
    """
    if UNSTORABLE.search(username):  # no such name can exist (and PostgreSQL cannot compare a NUL)
        raise NotFound(f"no user {username[:80]!r}")
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def users() -> list[User]:
    """Every account, by name (the admins' user list)."""
    return list(db.session.scalars(select(User).order_by(User.username)))


def user_by_id(user_id: int) -> User:
    """Look a user up by id.

    :raise NotFound: no such user.
    """
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"password must be at least {MIN_PASSWORD} characters")


# -- channels --------------------------------------------------------------------------------


def create_channel(
    owner: User,
    name: str,
    *,
    fields: Sequence[str] = (),
    description: str = "",
    public: bool = False,
    **settings: object,
) -> Channel:
    """Create a channel with named fields (one field, ``field1``, when none are named)."""
    _check_name(name)
    channel = Channel(owner_id=owner.id, name=name)
    _apply(channel, {"description": description, "public": public, **settings})  # refuses nulls
    names = list(fields) or ["field1"]
    if len(set(names)) != len(names):
        raise BadRequest("field names must be unique within a channel")
    for name_ in names:
        _check_name(name_)
    _check_field_count(len(names))
    channel.fields = [Field(number=i, name=n) for i, n in enumerate(names, start=1)]
    db.session.add(channel)
    _commit_unique(f"you already have a channel named {name!r}")
    return channel


def update_channel(channel: Channel, **changes: object) -> Channel:
    """Change a channel's settings; a name clash with another of the owner's channels is 409."""
    if "name" in changes:
        _check_name(str(changes["name"]))
    _apply(channel, changes)
    channel.updated_at = utcnow()
    _commit_unique(f"you already have a channel named {changes.get('name')!r}")
    return channel


_SETTINGS = {
    "name",
    "description",
    "public",
    "latitude",
    "longitude",
    "elevation",
    "min_interval_s",
    "retention_days",
    "mqtt_topic_prefix",
}


_REQUIRED = {"name", "description", "public", "min_interval_s"}

#: The rate limit a channel may set: seconds between writes (one write a day at most).
MAX_MIN_INTERVAL_S = DAY // SECOND
#: The longest retention a channel may set, in days (a century).
MAX_RETENTION_DAYS = 36_500
#: Integer settings and their bounds; every way of changing a channel meets them here.
_BOUNDS = {"min_interval_s": (0, MAX_MIN_INTERVAL_S), "retention_days": (1, MAX_RETENTION_DAYS)}


def _apply(channel: Channel, changes: dict[str, object]) -> None:
    for key, value in changes.items():
        if key not in _SETTINGS:
            raise BadRequest(f"unknown channel setting {key!r}")
        if value is None and key in _REQUIRED:
            raise BadRequest(f"{key} cannot be null")
        _check_text(value, key)
        if isinstance(value, float) and not math.isfinite(value):  # JSON's Infinity, NaN
            raise BadRequest(f"{key} must be a finite number")
        if key in _BOUNDS and value is not None:
            low, high = _BOUNDS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise BadRequest(f"{key} must be a whole number from {low} to {high}")
        setattr(channel, key, value)


def delete_channel(channel: Channel) -> None:
    """Delete a channel with its fields, keys, entries and readings."""
    db.session.delete(channel)
    _commit()


def channels_of(user: User) -> list[Channel]:
    """A user's channels, by id."""
    return list(db.session.scalars(select(Channel).where(Channel.owner_id == user.id).order_by(Channel.id)))


def channel_for(user: User, channel_id: int) -> Channel:
    """A channel the user owns (admins: any channel).

    :raise NotFound: missing or someone else's (the two are not told apart).
    """
    channel = db.session.get(Channel, channel_id)
    if channel is None or (channel.owner_id != user.id and not user.is_admin):
        raise NotFound("channel not found")
    return channel


def find_channel(ref: str, owner: User | None = None) -> Channel:
    """A channel by id or by name (names are unique per owner).

    :raise NotFound: no such channel, or the name is ambiguous without an owner.
    """
    if UNSTORABLE.search(ref):
        raise NotFound(f"no channel {ref[:60]!r}")
    query = select(Channel)
    number = plain_int(ref)
    query = query.where(Channel.id == number) if number is not None else query.where(Channel.name == ref)
    if owner is not None:
        query = query.where(Channel.owner_id == owner.id)
    found = list(db.session.scalars(query.limit(2)))
    if len(found) != 1:
        raise NotFound(f"no channel {ref!r}" if not found else f"channel name {ref!r} is ambiguous")
    return found[0]


# -- fields ----------------------------------------------------------------------------------


def add_field(channel: Channel, name: str, *, unit: str | None = None, number: int | None = None) -> Field:
    """Add a field; its number is the next free one unless given."""
    _check_name(name)
    _check_text(unit, "unit")
    if number is None:
        number = (
            db.session.scalar(select(func.max(Field.number)).where(Field.channel_id == channel.id)) or 0
        ) + 1
    if number < 1:
        raise BadRequest("field numbers start at 1")
    count = db.session.scalar(select(func.count()).where(Field.channel_id == channel.id)) or 0
    _check_field_count(count + 1)
    field = Field(channel_id=channel.id, number=number, name=name, unit=unit)
    db.session.add(field)
    _commit_unique(f"channel already has a field {number} or a field named {name!r}")
    return field


def _check_field_count(count: int) -> None:
    """The same limit line protocol's new fields meet (``store``), for fields made by hand."""
    limit = int(current_app.config["MAX_FIELDS_PER_CHANNEL"])
    if count > limit:
        raise BadRequest(
            f"a channel has at most {limit} fields (MAX_FIELDS_PER_CHANNEL)", code="too_many_fields"
        )


def field_numbers(channel_id: int) -> dict[str, int]:
    """A channel's field names mapped to their numbers (for adapters that take names)."""
    rows = db.session.execute(select(Field.name, Field.number).where(Field.channel_id == channel_id))
    return dict(rows.tuples().all())


# -- fields named by writers (line protocol, JSON) ----------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelFields:
    """A channel's name and its fields' numbers by name."""

    name: str
    numbers: dict[str, int]

    def named(self, channel_id: int, ref: str) -> bool:
        """True when ``ref`` names this channel, by id or by name (InfluxDB's ``db`` parameter)."""
        return ref == self.name or plain_int(ref) == channel_id


_CHANNEL_FIELDS = database.per_dialect(
    lambda d: d.bind(
        "SELECT c.name, f.name, f.number FROM channels c LEFT JOIN fields f ON f.channel_id = c.id "
        "WHERE c.id = ?"
    )
)


def channel_fields(channel_id: int) -> ChannelFields | None:
    """The channel's name and field numbers (None: no such channel), in one fixed statement.

    Batch adapters look these up on every request; without the ORM the
    request's session stays idle, so ``store.write`` takes its own connection
    (and the writers' queue) instead of the session's.
    """
    with database.cursor(_CHANNEL_FIELDS) as (cursor, statement):
        cursor.execute(statement, (channel_id,))
        rows = cursor.fetchall()
    if not rows:
        return None
    return ChannelFields(rows[0][0], {name: number for _, name, number in rows if name is not None})


#: Longest name of a field made by a write: InfluxDB's 64 KiB series key, escaped (migration 0008).
MAX_SERIES_NAME = 2 * 65_536


def ensure_fields(channel_id: int, names: Iterable[str], *, limit: int) -> dict[str, int]:
    """Numbers of the named fields, creating the missing ones with the next free numbers.

    New fields are flushed, not committed: the ``store.write`` that follows in
    the same request commits them with the data, or rolls both back. The
    channel row is locked before fields are added, so two writers creating
    the same field serialise instead of colliding on the unique name.

    :raise BadRequest: a name over :data:`MAX_SERIES_NAME` characters, or more than ``limit`` fields.
    """
    wanted = set(names)
    known = field_numbers(channel_id)
    missing = sorted(wanted - known.keys())
    if not missing:
        return {name: known[name] for name in wanted}
    session = db.session
    try:
        for name in missing:
            if not name.strip() or len(name) > MAX_SERIES_NAME or UNSTORABLE.search(name):
                raise BadRequest(
                    f"field names are 1-{MAX_SERIES_NAME} characters, without control characters: "
                    f"{name[:60]!r}…",
                    code="bad_field_name",
                )
        locked = session.execute(
            update(Channel)
            .where(Channel.id == channel_id)
            .values(last_entry_id=Channel.last_entry_id)
            .returning(Channel.id)
        ).scalar()
        if locked is None:
            raise NotFound("channel not found")
        known = field_numbers(channel_id)  # another writer may have added some meanwhile
        missing = sorted(wanted - known.keys())
        if len(known) + len(missing) > limit:
            raise BadRequest(
                f"this write would give the channel {len(known) + len(missing)} fields; "
                f"the limit is {limit} (MAX_FIELDS_PER_CHANNEL)",
                code="too_many_fields",
            )
        number = max(known.values(), default=0)
        rows = []
        for name in missing:
            number += 1
            rows.append({"channel_id": channel_id, "number": number, "name": name, "created_at": utcnow()})
            known[name] = number
        if rows:  # none when another writer made them all while this one waited for the lock
            session.execute(Field.__table__.insert(), rows)  # type: ignore[attr-defined]
    except BaseException:
        session.rollback()
        raise
    return {name: known[name] for name in wanted}


def get_field(channel: Channel, number: int) -> Field:
    """A channel's field by number.

    :raise NotFound: no such field.
    """
    field = db.session.scalar(select(Field).where(Field.channel_id == channel.id, Field.number == number))
    if field is None:
        raise NotFound(f"channel has no field {number}")
    return field


#: Settings of a field that update_field changes.
FIELD_SETTINGS = frozenset({"name", "unit", "kind", "max_gap_s", "cal_scale", "cal_offset", "expression"})
#: Calibration factors beyond this size are refused (they can only be a mistake).
MAX_CALIBRATION = 1e12


def update_field(field: Field, **changes: object) -> Field:
    """Rename a field, change its unit, its kind or its energy gap.

    A new gap changes every stored integral of the field: all its hours are marked
    stale, and the next read rebuilds their rollups.
    """
    for key, value in changes.items():
        if key not in FIELD_SETTINGS:
            raise BadRequest(f"unknown field setting {key!r}")
        if key == "name":
            if value is None:  # else the NOT NULL violation read as a name clash (409)
                raise BadRequest("name cannot be null")
            _check_name(str(value))
        elif key == "kind" and value not in FIELD_KINDS:
            raise BadRequest(f"kind must be one of {', '.join(FIELD_KINDS)}", code="bad_kind")
        elif key in ("cal_scale", "cal_offset"):
            value = _check_calibration(key, value)
        elif key == "expression":
            value = _check_expression(field, value)
        elif key == "max_gap_s":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_GAP_S:
                raise BadRequest(f"max_gap_s must be a whole number from 1 to {MAX_GAP_S}", code="bad_gap")
            if value != field.max_gap_s:
                rollups.mark_field_dirty(db.session, field.id)
        else:
            _check_text(value, key)
        setattr(field, key, value)
    if {"cal_scale", "cal_offset"} & changes.keys():
        db.session.add(
            FieldCalibration(
                field_id=field.id, since_us=now_us(), cal_scale=field.cal_scale, cal_offset=field.cal_offset
            )
        )
    _mark_derived(field.channel)
    _commit_unique(f"channel already has a field named {changes.get('name')!r}")
    return field


def _check_calibration(key: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{key} must be a number", code="bad_calibration")
    if abs(value) > MAX_CALIBRATION or (key == "cal_scale" and value == 0):
        raise BadRequest(f"{key} must be non-zero and within ±{MAX_CALIBRATION:g}", code="bad_calibration")
    return float(value)


def _check_expression(field: Field, value: object) -> str | None:
    """An expression over the channel's other fields, refused with the reason (fieldstation.derive)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("expression must be text", code="bad_expression")
    others = [f for f in field.channel.fields if f.id != field.id]
    return derive.check_expression(
        value, [derive.FieldRule(f.number, f.name, expression=f.expression) for f in others]
    )


def _mark_derived(channel: Channel) -> None:
    """Keep ``channel.derived`` true exactly while a field has a calibration or an expression."""
    channel.derived = any(
        f.cal_scale is not None or f.cal_offset is not None or f.expression for f in channel.fields
    )


def calibrations(field: Field) -> list[FieldCalibration]:
    """The field's calibration changes, oldest first: readings stored after each used it."""
    query = select(FieldCalibration).where(FieldCalibration.field_id == field.id)
    return list(db.session.scalars(query.order_by(FieldCalibration.since_us, FieldCalibration.id)))


def delete_field(field: Field) -> None:
    """Delete a field and its readings."""
    channel = field.channel
    db.session.delete(field)
    db.session.flush()
    db.session.expire(channel, ["fields"])
    _mark_derived(channel)
    _commit()


# -- keys ------------------------------------------------------------------------------------


def create_key(
    user: User,
    kind: KeyKind,
    *,
    channel: Channel | None = None,
    device: str | None = None,
    label: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its one-time plain value.

    A user has one user key: creating a new one revokes the old.
    """
    _check_text(label, "label")
    if kind == KeyKind.USER:
        if channel is not None or device is not None:
            raise BadRequest("user keys belong to a user, not a channel or device")
        for old in db.session.scalars(
            select(ApiKey).where(
                ApiKey.user_id == user.id, ApiKey.kind == KeyKind.USER, ApiKey.revoked_at.is_(None)
            )
        ):
            old.revoked_at = utcnow()
    elif channel is None:
        raise BadRequest(f"{kind.value} keys belong to a channel")
    if device is not None:
        if kind != KeyKind.WRITE:
            raise BadRequest("only write keys can be bound to a device")
        device = normalize_device(device)
    raw = generate_key()
    key = ApiKey(
        kind=kind.value,
        key_hash=hash_key(raw),
        prefix=raw[:4],
        user_id=user.id,
        channel_id=channel.id if channel else None,
        device_id=device,
        label=label,
    )
    db.session.add(key)
    _commit()
    return key, raw


def keys_of(channel: Channel) -> list[ApiKey]:
    """A channel's keys, live and revoked, oldest first."""
    return list(db.session.scalars(select(ApiKey).where(ApiKey.channel_id == channel.id).order_by(ApiKey.id)))


def user_keys_of(user: User) -> list[ApiKey]:
    """A user's own user keys (management API), live and revoked, oldest first."""
    return list(
        db.session.scalars(
            select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.kind == KeyKind.USER).order_by(ApiKey.id)
        )
    )


def revoke_key(key: ApiKey) -> None:
    """Revoke a key; it is refused from the next request on."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        _commit()


def key_by_id(key_id: int, *, channel: Channel | None = None, user: User | None = None) -> ApiKey:
    """A key by id, scoped to a channel or a user.

    :raise NotFound: no such key in that scope.
    """
    key = db.session.get(ApiKey, key_id)
    if (
        key is None
        or (channel is not None and key.channel_id != channel.id)
        or (user is not None and key.user_id != user.id)
    ):
        raise NotFound("key not found")
    return key


# -- devices ---------------------------------------------------------------------------------


def add_device(channel: Channel, device_id: str, *, label: str | None = None) -> Device:
    """Allow a device (MAC address or other id) to write; a non-empty list restricts writes."""
    _check_text(label, "label")
    device = Device(channel_id=channel.id, device_id=normalize_device(device_id), label=label)
    db.session.add(device)
    _commit_unique(f"device {device.device_id} is already allowed")
    return device


def remove_device(channel: Channel, device_id: str) -> None:
    """Remove a device from the allow-list.

    :raise NotFound: the device is not on the list.
    """
    device = db.session.scalar(
        select(Device).where(Device.channel_id == channel.id, Device.device_id == normalize_device(device_id))
    )
    if device is None:
        raise NotFound("device not on the allow-list")
    db.session.delete(device)
    _commit()


# -- helpers ---------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > 255 or UNSTORABLE.search(name):
        raise BadRequest("names must be 1-255 characters, without control characters")


#: Inside :func:`one_change`: the operations only flush, and the context commits them together.
_DEFERRED: ContextVar[bool] = ContextVar("fieldstation_manage_deferred", default=False)


@contextmanager
def one_change() -> Iterator[None]:
    """Run several operations as one transaction: all of them are saved, or none.

    A form that renames a channel and its fields (the dashboard's edit page) must not
    keep the rename when a later field name clashes (409).
    """
    token = _DEFERRED.set(True)
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        _DEFERRED.reset(token)


def _check_text(value: object, what: str) -> None:
    """Free text (units, labels, descriptions) holds nothing a database or an XML answer refuses."""
    if isinstance(value, str) and UNSTORABLE.search(value):
        raise BadRequest(f"{what} may not hold control characters")


def _commit() -> None:
    """Commit, or inside :func:`one_change` only flush (constraint errors surface here alike)."""
    if _DEFERRED.get():
        db.session.flush()
    else:
        db.session.commit()


def _commit_unique(message: str) -> None:
    """Commit; a unique-constraint violation becomes a 409 and changes nothing."""
    try:
        _commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(message) from None
