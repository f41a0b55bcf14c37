"""Request bodies as the write adapters need them: size-capped, gunzipped, form-decoded.

Flask neither gunzips (Telegraf sends ``Content-Encoding: gzip`` by default,
docs/clients.md §4) nor parses a form body sent without a Content-Type
(DIY ThingSpeak sketches do), so both happen here. Every failure is a
:class:`~fieldstation.errors.FieldstationError` or Werkzeug's 413, never a 500.
"""

from __future__ import annotations

import json
import zlib
from urllib.parse import parse_qsl

from flask import current_app, request

from fieldstation.errors import BadRequest, FieldstationError

#: Most parameters one form or query string may carry (ThingSpeak needs about 16).
MAX_PARAMS = 200
_READ = 64 * 1024


class TooLarge(FieldstationError):
    """The body (or what it inflates to) exceeds the configured limit."""

    status = 413
    code = "too_large"


#: Body types ``/update`` reads as a form: ThingSpeak clients send forms without a Content-Type.
FORM_TYPES = ("", "application/x-www-form-urlencoded", "text/plain")


def raw_body() -> bytes:
    """The request body, inflated when ``Content-Encoding: gzip``.

    Werkzeug caps the compressed size at MAX_CONTENT_LENGTH (chunked bodies
    included); inflation stops at MAX_DECOMPRESSED_LENGTH or MAX_PARSED_BODY,
    whichever is smaller, so a gzip bomb costs at most that much memory; a
    plain body over MAX_PARSED_BODY is refused too (parsing it whole would
    cost about 15 times its size).

    :raise TooLarge: the (inflated) body is over a limit.
    :raise BadRequest: malformed gzip or an unsupported encoding.
    """
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # Werkzeug stops a chunked body at the limit without telling whether more
        # was coming; a body that reaches the limit is refused rather than cut short.
        raise TooLarge(f"body is larger than MAX_CONTENT_LENGTH ({limit} bytes)")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    parsed = parse_limit()
    if encoding in ("", "identity"):
        if len(data) > parsed:
            raise TooLarge(
                f"body is larger than MAX_PARSED_BODY ({parsed} bytes), the most parsed at once; "
                "send smaller batches"
            )
        return data
    if encoding not in ("gzip", "x-gzip"):
        raise BadRequest(f"unsupported Content-Encoding {encoding[:40]!r}", code="bad_encoding")
    return gunzip(data, min(int(current_app.config["MAX_DECOMPRESSED_LENGTH"]), parsed))


def parse_limit() -> int:
    """MAX_PARSED_BODY: the most bytes of a body (inflated) parsed at once; memory grows with it."""
    return int(current_app.config["MAX_PARSED_BODY"])


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate a gzip body (one or more members) to at most ``limit`` bytes.

    Each step either inflates up to 64 KiB or ends a member, so the loop runs at
    most ``limit / 64 KiB`` plus one step per member: no input makes it spin.
    (A member's end must be read from ``eof``: zlib leaves the input past it in
    ``unused_data`` and, when the output cap stopped it, in ``unconsumed_tail``
    too, which a loop on "input left" would feed back forever.)

    :raise TooLarge: it inflates beyond ``limit``.
    :raise BadRequest: it is not valid, complete gzip.
    """
    out = bytearray()
    pending = data
    try:
        while pending:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            while not inflater.eof:
                out += inflater.decompress(pending, _READ)
                if len(out) > limit:
                    raise TooLarge(f"body inflates to more than {limit} bytes")
                if inflater.eof:
                    break
                if not inflater.unconsumed_tail:
                    # Input spent, member unfinished: what is left lies in zlib's window.
                    out += inflater.flush()
                    if len(out) > limit:
                        raise TooLarge(f"body inflates to more than {limit} bytes")
                    if not inflater.eof:
                        raise BadRequest("truncated gzip body", code="bad_gzip")
                    break
                pending = inflater.unconsumed_tail
            pending = inflater.unused_data.lstrip(b"\x00")
    except zlib.error as exc:
        raise BadRequest(f"malformed gzip body: {exc}", code="bad_gzip") from None
    return bytes(out)


def decode_form(data: bytes | str, what: str = "form") -> list[tuple[str, str]]:
    """``a=1&b=2`` -> pairs, strictly UTF-8, at most :data:`MAX_PARAMS` pairs.

    :raise BadRequest: not UTF-8 or too many parameters.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_PARAMS)
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not UTF-8", code="bad_encoding") from None
    except ValueError:
        raise BadRequest(f"{what} has more than {MAX_PARAMS} parameters", code="too_many_params") from None


def params() -> dict[str, str]:
    """Query string and form body merged (the body wins), decoded strictly.

    A body is read as a form when it says so or carries no Content-Type at
    all; JSON bodies are left to their adapters.
    """
    merged = dict(decode_form(request.query_string, "query string"))
    if request.method == "POST":
        mimetype = request.mimetype
        if mimetype in FORM_TYPES:
            merged.update(decode_form(raw_body(), "form body"))
        elif mimetype == "multipart/form-data":
            merged.update(_multipart())
        elif mimetype == "application/json":
            merged.update(json_params(raw_body()))
    return merged


def json_params(data: bytes) -> dict[str, str]:
    """A JSON object of parameters (ThingSpeak takes ``{"api_key": …, "field1": 73}``) as form values.

    Numbers become their text, ``null`` is "not set"; anything nested is refused.

    :raise BadRequest: not a JSON object of strings, numbers and nulls, or too many members.
    """
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("JSON body must be an object of parameters", code="invalid_body")
    if len(body) > MAX_PARAMS:
        raise BadRequest(f"JSON body has more than {MAX_PARAMS} members", code="too_many_params")
    values: dict[str, str] = {}
    for name, value in body.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadRequest(f"{name[:40]!r} must be a string or a number", code="invalid_body")
        values[name] = (
            value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
        )
    return values


def _multipart() -> dict[str, str]:
    """A multipart form's fields. werkzeug decodes each part with replacement characters,
    so a U+FFFD marks bytes that were not UTF-8: refused, as :func:`decode_form` refuses them."""
    form = request.form
    if any("\ufffd" in key or "\ufffd" in value for key, value in form.items(multi=True)):
        raise BadRequest("multipart form body is not valid UTF-8", code="bad_encoding")
    return dict(form.items())
