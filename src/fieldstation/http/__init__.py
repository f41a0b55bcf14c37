"""Blueprint objects; each interface module attaches its routes to one of these."""

from __future__ import annotations

from flask import Blueprint
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter
from werkzeug.wrappers import Response

#: Native JSON API (management and data), under /api/v1.
api_bp = Blueprint("api", __name__, url_prefix="/api/v1")


class RowNumber(IntegerConverter):
    """``<int:…>`` in every route: an id or field number, at most an INTEGER column's largest value.

    A larger number is a 404, like any missing row, instead of reaching the database, which
    refuses to bind it: PostgreSQL's INTEGER is 32 bits (DataError), SQLite's driver stops at
    64 bits (OverflowError); either was a 500. NotFound rather than Werkzeug's ValidationError,
    which answers 405 when the path has routes for other methods.
    """

    def to_python(self, value: str) -> int:
        number: int = super().to_python(value)
        if number > 2**31 - 1:
            raise NotFound()
        return number


#: Browsers take an answer's Content-Type as given: text a device wrote comes back in
#: ``last.txt``, CSV and SVG answers, and a browser that guessed HTML or script from it would run it.
NOSNIFF = ("X-Content-Type-Options", "nosniff")


def no_sniffing(response: Response) -> Response:
    """Every answer gets :data:`NOSNIFF` (the app's ``after_request``; ``hotpath`` calls it too)."""
    response.headers.setdefault(*NOSNIFF)
    return response
