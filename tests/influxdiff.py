"""Differential InfluxQL: the same points in a real InfluxDB 1.6 and in Fieldstation, the same query to both.

A test takes the ``twin`` fixture (import it from this module; ``influxdb`` is conftest's),
writes line protocol with :meth:`Twin.write` (to a fresh InfluxDB database and to a
fresh channel of the same name), then asks both with :meth:`Twin.compare`, which
asserts that the JSON answers are equal: structure, names, tags, columns and times
exactly, numbers as doubles to a relative 1e-9 (sums and means are added up in
another order). Error answers are compared by where they are (the same statement,
the same status) and, with ``exact_errors=True``, by their text.
"""

from __future__ import annotations

import itertools
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fieldstation import manage
from tests.factories import Account, make_channel
from tests.servers import InfluxDB, query

#: Relative difference allowed between two doubles (summation order differs).
REL = 1e-9

_names = itertools.count()


@dataclass
class Answer:
    """One server's answer: the HTTP status and the decoded JSON."""

    status: int
    body: Any


@dataclass
class Twin:
    """A database in InfluxDB and a channel in Fieldstation, both called :attr:`database`."""

    influx: InfluxDB
    client: FlaskClient
    database: str
    write_key: str
    read_key: str

    def write(self, body: str, precision: str = "ns") -> None:
        """Store ``body`` in both; both must accept it whole (204)."""
        params = urllib.parse.urlencode({"db": self.database, "precision": precision})
        theirs = _http(f"{self.influx.url}/write?{params}", body.encode())
        ours = self.client.post(
            f"/write?{params}", data=body.encode(), headers={"Authorization": f"Token {self.write_key}"}
        )
        assert (ours.status_code, theirs.status) == (204, 204), (ours.data, theirs.body)

    def answers(self, q: str, *, method: str = "GET", **params: str) -> tuple[Answer, Answer]:
        """Fieldstation's and InfluxDB's answers to ``q`` (with ``params`` such as ``epoch``)."""
        args = {"q": q, "db": self.database, **params}
        encoded = urllib.parse.urlencode(args)
        if method == "GET":
            theirs = _http(f"{self.influx.url}/query?{encoded}")
            response = self.client.get("/query", query_string=args, headers=self._auth)
        else:
            theirs = _http(f"{self.influx.url}/query", encoded.encode())
            response = self.client.post("/query", data=args, headers=self._auth)
        return Answer(response.status_code, json.loads(response.data)), theirs

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.read_key}"}

    def compare(self, q: str, *, method: str = "GET", exact_errors: bool = False, **params: str) -> Any:
        """Assert both answer ``q`` alike (see the module's docstring); Fieldstation's JSON."""
        ours, theirs = self.answers(q, method=method, **params)
        difference = differ(ours, theirs, exact_errors=exact_errors)
        assert difference is None, f"{q!r} {params}: {difference}\nours:   {ours}\ntheirs: {theirs}"
        return ours.body


@pytest.fixture
def twin(app: Flask, influxdb: InfluxDB, owner: Account) -> Twin:
    """A fresh, empty database on both servers (one per test, or per hypothesis run)."""
    name = f"twin{next(_names)}"
    query(influxdb, f'CREATE DATABASE "{name}"')
    channel = make_channel(owner.user, name=name, fields=[])
    # As an InfluxDB database, the channel starts with no series: no empty "field1".
    manage.delete_field(channel.channel.fields[0])
    return Twin(influxdb, app.test_client(), name, channel.write_key, channel.read_key)


def differ(ours: Answer, theirs: Answer, *, exact_errors: bool = False) -> str | None:
    """Where two answers differ, as a path and both values; None when they agree."""
    if ours.status != theirs.status:
        return f"status {ours.status} != {theirs.status}"
    return _differ(_ties_sorted(ours.body), _ties_sorted(theirs.body), "", exact_errors)


def _ties_sorted(body: Any) -> Any:
    """Rows of one time in a fixed order: InfluxDB merges raw rows of several series at one time in
    no defined order (a heap's), unless the query selects the tags that tell them apart."""
    if not isinstance(body, dict):
        return body
    for result in body.get("results", []):
        for series in result.get("series", []):
            runs = itertools.groupby(series.get("values", []), key=lambda row: row[0])
            series["values"] = [row for _, run in runs for row in sorted(run, key=_row_key)]
    return body


def _differ(a: Any, b: Any, path: str, exact_errors: bool) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        if "error" in a and "error" in b and not exact_errors and path.count("/") <= 2:
            return None
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            found = _differ(a[key], b[key], f"{path}/{key}", exact_errors)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _differ(x, y, f"{path}/{i}", exact_errors)
            if found:
                return found
        return None
    if _number(a) and _number(b):
        if a == b or math.isclose(a, b, rel_tol=REL, abs_tol=1e-12):
            return None
        return f"{path}: {a!r} != {b!r}"
    return None if a == b else f"{path}: {a!r} != {b!r}"


def _row_key(row: list[Any]) -> str:
    """Rows of one time sorted alike on both sides: 5 and 5.0 are the same number."""
    return json.dumps([float(v) if _number(v) else v for v in row])


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _http(url: str, data: bytes | None = None) -> Answer:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as answer:
            raw = answer.read()
            return Answer(answer.status, json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        raw = error.read()
        return Answer(error.code, json.loads(raw) if raw else None)
