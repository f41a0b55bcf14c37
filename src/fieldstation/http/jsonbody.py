"""Parse and validate JSON request bodies with pydantic; every failure is a clear 400."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, ValidationError

from fieldstation.errors import BadRequest

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Request bodies: unknown fields and wrong types are errors, not silently coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


def json_body() -> Any:
    """The request body decoded as JSON.

    :raise BadRequest: empty, not UTF-8, or not JSON.
    """
    raw = request.get_data(cache=True)
    if not raw:
        raise BadRequest("request body must be JSON", code="invalid_json")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:  # [[[[… nested deeper than the interpreter's stack
        raise BadRequest("request body is nested too deeply", code="invalid_json") from None


def parse_body(model: type[M]) -> M:
    """The request body validated against ``model``.

    :raise BadRequest: not JSON, or not matching the model (the message names the field).
    """
    return validate(model, json_body())


def validate(model: type[M], data: Any) -> M:
    """Validate decoded JSON against ``model``; the first error becomes the message."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}", code="invalid_body") from None
