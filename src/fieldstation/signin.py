"""The sign-in throttle: wrong passwords make a name at an address, and an address, wait.

Two counts are kept for every wrong password, in the database (every worker and
host sees them): one for the name *at the client's address*, one for the address
across all names. After :data:`NAME_FREE_TRIES` wrong passwords for a name from
one address, or :data:`ADDRESS_FREE_TRIES` from one address for any names, that
name (or every name) waits before a password is checked again, twice as long for
each further failure, up to :data:`MAX_WAIT_S`.

- Names that exist and names that do not are counted alike, so the answers (401,
  then 429) never tell which names exist.
- The name's count is bound to the address, so a stranger's guesses do not hold
  the owner out from their own address (the stranger's address waits instead).
- A failure after :data:`FORGET_S` of quiet starts a new count.

Behind a reverse proxy every client has the proxy's address unless ``PROXY_COUNT``
says how many proxies set ``X-Forwarded-For`` (werkzeug's ``ProxyFix``,
docs/deployment.md); else the per-address limit holds everyone up together.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Table, case, select
from sqlalchemy.dialects import postgresql, sqlite

from fieldstation.errors import RateLimited
from fieldstation.extensions import db
from fieldstation.models import SignInFailures
from fieldstation.timeunits import US, now_us

#: Wrong passwords for one name from one address before that name waits there.
NAME_FREE_TRIES = 5
#: Wrong passwords from one address, for any names, before every sign-in from it waits.
ADDRESS_FREE_TRIES = 20
#: The first wait, doubled for every failure after the free ones, up to MAX_WAIT_S.
WAIT_S = 30
MAX_WAIT_S = 900
#: A failure this long after the previous one of a subject starts its count afresh.
FORGET_S = 24 * 3600


def wait_after(failures: int, free: int) -> int:
    """Seconds a subject waits after its last wrong password, given how many came in a row."""
    if failures < free:
        return 0
    return min(WAIT_S << min(failures - free, 10), MAX_WAIT_S)


def _subjects(username: str, address: str | None) -> dict[str, int]:
    """Hashed subjects and their free tries: the name at the address, and the address."""
    where = address or "-"
    name = hashlib.sha256(f"name\0{where}\0{username}".encode("utf-8", "replace")).hexdigest()
    addr = hashlib.sha256(f"addr\0{where}".encode("utf-8", "replace")).hexdigest()
    return {name: NAME_FREE_TRIES, addr: ADDRESS_FREE_TRIES}


def check(username: str, address: str | None) -> None:
    """Refuse the attempt before any password is checked while the name or address waits.

    :raise RateLimited: either subject is waiting; the message gives the minutes left.
    """
    subjects = _subjects(username, address)
    rows = db.session.execute(
        select(SignInFailures.subject, SignInFailures.failures, SignInFailures.last_failure_us).where(
            SignInFailures.subject.in_(subjects)
        )
    ).all()
    now = now_us()
    left = max(
        (last + wait_after(count, subjects[subject]) * US - now for subject, count, last in rows),
        default=0,
    )
    if left > 0:
        raise RateLimited(f"too many wrong passwords; try again in {-(-left // (60 * US))} min")


def failed(username: str, address: str | None) -> None:
    """Count a wrong password for the name at the address and for the address (one statement each)."""
    now = now_us()
    table = SignInFailures.__table__
    assert isinstance(table, Table)
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    for subject in _subjects(username, address):
        stmt = insert(table).values(subject=subject, failures=1, last_failure_us=now)
        fresh = stmt.excluded.last_failure_us - table.c.last_failure_us > FORGET_S * US
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.subject],
            set_={
                "failures": case((fresh, 1), else_=table.c.failures + 1),
                "last_failure_us": stmt.excluded.last_failure_us,
            },
        )
        db.session.execute(stmt)
    db.session.commit()


def passed(username: str, address: str | None) -> None:
    """A right password clears the name's count at this address (the address's count stays:
    one account's owner must not be able to reset the limit on guessing the others)."""
    name_subject = next(iter(_subjects(username, address)))
    row = db.session.get(SignInFailures, name_subject)
    if row is not None:
        db.session.delete(row)
        db.session.commit()
