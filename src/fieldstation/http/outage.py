"""503 with Retry-After when the database is down or its disk is full, instead of a 500.

A device that gets 503 and ``Retry-After`` comes back later (ThingSpeak's
``/update`` answers 503 with the body ``0`` when it is overloaded); a 500 says
the request itself is at fault. Only failures of the database's availability
count: a lost connection, a server that refuses or shuts down, a full disk or an
I/O error, a lock held past the busy timeout, an exhausted pool. Anything else
stays a 500.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

#: SQLite's primary result codes of an unavailable database: busy, locked, I/O error, full, can't open.
_SQLITE_CODES = {5, 6, 10, 13, 14}
#: PostgreSQL SQLSTATEs (or their class): connection exception, insufficient resources (disk full,
#: out of memory, too many connections), shutting down or starting up, I/O error.
_PG_STATES = ("08", "53", "57P01", "57P02", "57P03", "58030")


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database cannot be used now."""
    seen: BaseException | None = exc
    for _ in range(8):  # the cause chain, not followed forever
        if seen is None:
            return False
        if _unavailable(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or (exc.orig is not None and _unavailable(exc.orig))
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_CODES
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)
    state = getattr(exc, "sqlstate", "")
    module = type(exc).__module__
    if module.startswith("psycopg"):
        if not state:  # no answer from the server at all (refused, reset, timed out)
            return type(exc).__name__ == "OperationalError"
        return str(state).startswith(_PG_STATES)
    return False


def outage_response(exc: BaseException) -> Response | None:
    """The 503 for a database outage, shaped for the request's endpoint; None for other errors.

    Call in a request context.
    """
    if not is_outage(exc):
        return None
    _rollback()
    message = "the database is unavailable; try again later"
    path = request.path
    if path.startswith("/update"):  # ThingSpeak's refusal body; devices read the status
        response = Response("0", mimetype="text/plain")
    elif path.endswith(("bulk_update.json", "bulk_update.csv")):
        error = {
            "error_code": "error_service_unavailable",
            "message": "Service Unavailable",
            "details": message,
        }
        response = jsonify({"status": "503", "error": error})
    else:
        response = jsonify({"error": {"code": "unavailable", "message": message}})
    response.status_code = 503
    response.headers["Retry-After"] = str(int(current_app.config["RETRY_AFTER_S"]))
    response.headers["X-Fieldstation-Error"] = message
    return response


def _rollback() -> None:
    from fieldstation.extensions import db

    try:
        db.session.rollback()
    except SQLAlchemyError:  # the connection is gone; the session is discarded at teardown
        pass


def register(app: Flask) -> None:
    """Answer outages raised by any view with :func:`outage_response`; other errors go on as before."""

    def _handler(exc: Exception) -> Any:
        response = outage_response(exc)
        if response is None:
            raise exc
        return response

    from fieldstation.extensions import db

    with app.app_context():
        # The store also uses the driver's own connections, whose errors are not wrapped. Taken
        # from the engine: importing psycopg for a SQLite database cost every worker's start 50 ms.
        driver_error = db.engine.dialect.loaded_dbapi.Error
    for kind in (DBAPIError, PoolTimeout, OSError, sqlite3.Error, driver_error):
        app.register_error_handler(kind, _handler)
