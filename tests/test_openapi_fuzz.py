"""Every /api/v1 operation fuzzed from the OpenAPI document: no 5xx, and answers as documented.

Schemathesis generates valid and invalid requests from ``openapi.json`` and sends them
through the WSGI app (a real SQLite database, the owner's user key). Path ids point at
the owner's channels most of the time, so the handlers behind the 404 get exercised too.
Checked: no server error; status code, content type, headers and body as the document
says; requests the document forbids are refused. Not checked: that every request the
document allows is accepted, since some answers depend on what it cannot describe (a
field number the channel lacks, an unknown IANA zone, an unparsable time, a float
such as 1.0 where an integer is due: JSON Schema calls that an integer).
Bounded (30 examples per operation, about 25 s) and deterministic (derandomize).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fieldstation.extensions import db
from tests.conftest import make_app, migrated_url, truncate_all
from tests.factories import make_channel, make_user

#: The checks that judge one answer. Left out: positive_data_acceptance (see above) and the
#: ones that replay requests (ignored_auth, use_after_free, …), which go over the network.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

#: Stand-ins the generated path ids are drawn from most of the time; ``owned`` maps them to rows.
MINE, MINE_TOO, OTHERS, DOOMED = 1, 2, 3, 4
_CONFIG = {
    "base-url": "http://localhost",
    "dictionaries": {"channels": {"values": [MINE, MINE_TOO, OTHERS]}, "small": {"values": [1, 2, 3]}},
    "parameters": {
        "path.channel_id": {"dictionary": "channels", "probability": 0.8},
        "path.number": {"dictionary": "small", "probability": 0.8},
        "path.key_id": {"dictionary": "small", "probability": 0.8},
    },
    # Deleting a channel the other operations use would leave them nothing but 404s.
    "operations": [{"include-operation-id": "deleteChannel", "parameters": {"channel_id": DOOMED}}],
}
_DOCUMENT = json.loads(resources.files("fieldstation").joinpath("openapi.json").read_text(encoding="utf-8"))
schema = schemathesis.openapi.from_dict(
    _DOCUMENT, config=schemathesis.config.SchemathesisConfig.from_dict(_CONFIG)
)


@dataclass
class Owned:
    headers: dict[str, str]
    channel_ids: dict[int, int]


@pytest.fixture
def sqlite_app(
    request: pytest.FixtureRequest, database_urls: dict[str, Any], tmp_path: Path
) -> Iterator[Flask]:
    """Like the ``app`` fixture, on SQLite only: the fuzzing is aimed at the HTTP layer."""
    application = make_app(migrated_url("sqlite", request, database_urls), tmp_path / "instance")
    with application.app_context():
        yield application
        db.session.remove()
        truncate_all()
        db.engine.dispose()


@pytest.fixture
def owned(sqlite_app: Flask) -> Owned:
    """Alice (whose key signs every request) with two channels and one to delete; one of Bob's."""
    alice = make_user("alice")
    ids = {
        MINE: make_channel(alice.user, name="mine").id,
        MINE_TOO: make_channel(alice.user, name="mine too", public=True).id,
        OTHERS: make_channel(make_user("bob").user, name="bob's").id,
        DOOMED: make_channel(alice.user, name="doomed").id,
    }
    return Owned(alice.headers, ids)


@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_operation(case: Any, sqlite_app: Flask, owned: Owned) -> None:
    channel_id = case.path_parameters.get("channel_id") if case.path_parameters else None
    if channel_id in owned.channel_ids:
        case.path_parameters["channel_id"] = owned.channel_ids[channel_id]
    case.call_and_validate(app=sqlite_app, headers=owned.headers, checks=CHECKS)
