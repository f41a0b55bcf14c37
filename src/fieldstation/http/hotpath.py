"""Single-reading device writes, answered without Flask's request machinery (issue #3).

A station's ``GET /update?api_key=…&field1=…``, the Arduino library's form
``POST /update``, the ``thingspeak`` Python package's ``POST /update.json?…`` and
the seed's ``GET /update/API_key=…/mac=…/field=…/data=…`` are most of what a
server of devices hears. Flask's request context, routing
and response objects were 44% of such a request's instructions (callgrind), so
this WSGI layer answers it with the very parts the Flask views use
(``decode_form``, ``entry_from_params``, ``parse_seed_path``, ``ingest.write_entry``)
in an app context.

InfluxDB's ``POST /write`` (Influx-speaking firmware posts one point per
request) is stored by the view's own ``store_lines``, with the parameters and
headers of werkzeug's ``Request``, as Flask reads them.

It answers only what it stored. Every request of another shape, and every
refusal, goes to the Flask app untouched: a refusal stores nothing, so Flask
gives exactly the answer it always gave (status, body, ``X-Fieldstation-Error``).
A partial ``/write`` (good lines stored, others rejected) is the one error
answered here, with the blueprint's own error response: Flask would store the
good lines again.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from fieldstation import db as database
from fieldstation.errors import FieldstationError
from fieldstation.http import NOSNIFF, no_sniffing
from fieldstation.http.bodies import FORM_TYPES, decode_form
from fieldstation.http.influx_write import domain_error, key_from, no_content, partial_write, store_lines
from fieldstation.http.outage import outage_response
from fieldstation.http.seed import parse_seed_path
from fieldstation.http.thingspeak_write import (
    KEY_HEADERS,
    REPLACED,
    entry_from_params,
    entry_json,
    request_device,
    write_key,
)
from fieldstation.ingest import write_entry
from fieldstation.points import Entry, plain_int

if TYPE_CHECKING:
    from flask import Flask

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: The write key's headers as WSGI names them.
_KEY_HEADERS = tuple("HTTP_" + name.replace("-", "_") for name in KEY_HEADERS)
#: A signed-in browser (its session), or a body only Flask's readers decode.
_FLASK_ONLY = ("HTTP_COOKIE", "HTTP_TRANSFER_ENCODING", "HTTP_CONTENT_ENCODING")
#: The headers of Flask's ``Response(text, mimetype="text/plain")``.
_TEXT = "text/plain; charset=utf-8"
#: A reading: the write key, the device, the entry.
Reading = tuple[str | None, str | None, Entry]


class DeviceWrites:
    """WSGI middleware: stores a recognised single reading (or /write) and answers it, else calls Flask."""

    def __init__(self, app: Flask, wsgi_app: WsgiApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    @property
    def max_body(self) -> int:
        """MAX_CONTENT_LENGTH as Flask reads it, and MAX_PARSED_BODY, on each request (tests and
        admins may change them); a larger body goes to Flask, which refuses it."""
        config = self.app.config
        return min(int(config["MAX_CONTENT_LENGTH"] or 0), int(config["MAX_PARSED_BODY"]))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/write":
            return self.influx_write(environ, start_response)
        reading = self.reading(environ)
        if reading is None:
            return self.wsgi_app(environ, start_response)
        try:
            with self.app.app_context():
                grant, result = write_entry(*reading)
                stored = result.entries[0]
                if environ["PATH_INFO"] == "/update.json":  # the `thingspeak` Python package's default
                    entry = entry_json(grant.channel_id, stored.entry_id, stored.ts, reading[2])
                    response = cast(Response, self.app.json.response(entry))  # what jsonify builds
                    if not stored.created:
                        response.headers[REPLACED[0]] = REPLACED[1]
                    return no_sniffing(response)(environ, start_response)
        except (FieldstationError, HTTPException):
            return self.wsgi_app(environ, start_response)  # nothing was stored: Flask answers the refusal
        except Exception as exc:  # noqa: BLE001 - answered as Flask answers what it did not expect
            return self._failure(environ, start_response, exc)
        body = str(stored.entry_id).encode()
        headers = [("Content-Type", _TEXT), ("Content-Length", str(len(body))), NOSNIFF]
        start_response("200 OK", headers if stored.created else [*headers, REPLACED])
        return [body]

    def influx_write(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """InfluxDB's ``POST /write``, stored by the view's own ``store_lines``; refusals go to Flask.

        A partial write (good lines stored, others rejected) cannot go to Flask,
        which would store the good lines again; it gets the blueprint's own answer.
        """
        body = self.body(environ)
        if body is None:
            return self.wsgi_app(environ, start_response)
        request = Request(environ, populate_request=False)  # werkzeug's: args and headers as Flask reads them
        try:
            key = key_from(request.headers.get("Authorization", ""), request.args.get("p"))
            with self.app.app_context(), database.shared_connection():
                limit = int(self.app.config["MAX_FIELDS_PER_CHANNEL"])  # read as the view reads it
                rejected = store_lines(request.args, key, lambda: body, limit)
                response = domain_error(partial_write(rejected)) if rejected else no_content()
        except (FieldstationError, HTTPException):
            return self.wsgi_app(environ, start_response)  # nothing was stored: Flask answers the refusal
        except Exception as exc:  # noqa: BLE001 - answered as Flask answers what it did not expect
            return self._failure(environ, start_response, exc)
        return no_sniffing(response)(environ, start_response)

    def body(self, environ: dict[str, Any]) -> bytes | None:
        """A ``POST``'s whole body as sent, or None when Flask must read it (or it is no ``POST``).

        Only a plain body of a stated length within MAX_CONTENT_LENGTH is read;
        ``wsgi.input`` is then replaced by the same bytes, so the Flask app can
        still read it. A body shorter than its length (the client went away) is
        left to Flask as well.
        """
        length = environ.get("CONTENT_LENGTH") or "0"  # none: no body, as werkzeug reads it
        if environ.get("REQUEST_METHOD") != "POST" or any(name in environ for name in _FLASK_ONLY):
            return None
        size = plain_int(length)
        if size is None or size > self.max_body:
            return None
        try:
            body = environ["wsgi.input"].read(size)
        except OSError:  # the client went away or stalled past the server's timeout; Flask says 400
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body if len(body) == size else None

    def reading(self, environ: dict[str, Any]) -> Reading | None:
        """The reading this request carries, or None when it is not one for this path.

        A POST's body is read here; ``wsgi.input`` is then replaced by the same
        bytes, so the Flask app can still read it.
        """
        if any(name in environ for name in _FLASK_ONLY):
            return None
        method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "")
        length = environ.get("CONTENT_LENGTH") or "0"
        try:
            if path in ("/update", "/update.json"):
                return self._update(environ, method, length)
            if path.startswith("/update/") and method == "GET" and length == "0" and _plain(path):
                seed = parse_seed_path(path[len("/update/") :])
                return seed.key, seed.device, Entry({seed.field: seed.value})
        except Exception:  # noqa: BLE001 - nothing is stored yet: Flask parses it again and answers, as ever
            pass
        return None

    def _update(self, environ: dict[str, Any], method: str | None, length: str) -> Reading | None:
        query = environ.get("QUERY_STRING", "").encode("latin-1")
        values = dict(decode_form(query, "query string"))
        if method == "POST":
            mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
            body = self.body(environ) if mimetype in FORM_TYPES else None
            if body is None:
                return None
            values.update(decode_form(body, "form body"))
        elif method != "GET" or length != "0":
            return None
        key = write_key(values, [environ.get(header) for header in _KEY_HEADERS])
        return key, request_device(values), entry_from_params(values)

    def _failure(
        self, environ: dict[str, Any], start_response: Callable[..., Any], exc: Exception
    ) -> Iterable[bytes]:
        """Flask's answer to an unexpected error (its 500 handler), without running the request again.

        The write may have reached the database before it failed, so it is not retried.
        """
        with self.app.request_context(environ):
            response = outage_response(exc) or self.app.handle_exception(exc)
        return response(environ, start_response)


def _plain(path: str) -> bool:
    """A path Flask routes as it reads: ASCII (no re-decoding) and no ``//`` (no merged-slash redirect)."""
    return path.isascii() and "//" not in path


def install(app: Flask) -> None:
    """Put :class:`DeviceWrites` in front of the app's WSGI callable (``DEVICE_HOT_PATH``, on by default)."""
    if app.config.get("DEVICE_HOT_PATH", True) and not app.config.get("SERVER_NAME"):
        app.wsgi_app = DeviceWrites(app, app.wsgi_app)  # type: ignore[method-assign]
