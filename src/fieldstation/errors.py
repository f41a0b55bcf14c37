"""One error vocabulary: exceptions carry their HTTP status and a short code. Pure: no Flask.

Parsers and the core raise these; ``fieldstation.http.errors`` renders them.
"""

from __future__ import annotations


class FieldstationError(Exception):
    """Base of every error a client can cause; rendered as a JSON 4xx."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class BadRequest(FieldstationError):
    """Malformed or invalid input."""


class Unauthorized(FieldstationError):
    """Missing or unknown credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(FieldstationError):
    """Valid credentials that may not do this (for example a device not on the allow-list)."""

    status = 403
    code = "forbidden"


class NotFound(FieldstationError):
    """Missing, or not visible to the caller (never reveals which)."""

    status = 404
    code = "not_found"


class Conflict(FieldstationError):
    """The request clashes with existing state (duplicate name)."""

    status = 409
    code = "conflict"


class RateLimited(FieldstationError):
    """Too soon: the channel's minimum interval between updates, or the sign-in throttle."""

    status = 429
    code = "rate_limited"
