"""The OpenAPI document validates and documents exactly the /api/v1 routes of the app."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

_CONVERTER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>")
_ANY = re.compile(r"<any\(([^)]*)\):[a-z_]+>")


def app_routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) for every /api/v1 rule; ``any(a, b)`` converters become one path each."""
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        paths = [rule.rule]
        match = _ANY.search(rule.rule)
        if match:
            paths = [rule.rule.replace(match.group(0), o.strip()) for o in match.group(1).split(",")]
        for path in paths:
            openapi_path = _CONVERTER.sub(r"{\1}", path)
            for method in rule.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    found.add((openapi_path, method.lower()))
    return found


def test_document_is_valid_and_matches_the_routes(client: FlaskClient, app: Flask) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    validate(document)
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == app_routes(app)
