"""Line protocol against a real InfluxDB 1.6: the same generated bodies to both, the same stored data.

Each hypothesis example is one request: a body of generated lines, line ``i``'s
measurement starting with ``m<i>_`` so that lines never share a series (no type
conflicts between lines) and what a server stored tells which lines it
accepted. The body goes to a fresh InfluxDB database and to a fresh channel of
Fieldstation's ``/write``; then both are read back. Compared exactly: which lines
were stored (InfluxDB's ``SHOW SERIES`` keys against Fieldstation's field names)
and, as doubles, every stored value at its time in microseconds.

Left out of the generator, where Fieldstation stores differently on purpose
(docs/ingest.md, "Line protocol"): ``u`` integers (InfluxDB 1.x refuses them
unless built with unsigned support; Fieldstation takes them), strings over 255
characters (also where an open quote swallows the lines after it, which the test
then skips) and control characters other than tab and line breaks in strings and
names (Fieldstation's text columns refuse them). Integers beyond 2**53 are
compared as the doubles both servers' JSON gives; times finer than a
microsecond are compared in whole microseconds (Fieldstation keeps µs).
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from fieldstation import lineprotocol as lp
from fieldstation.extensions import db
from fieldstation.models import User
from tests import readback
from tests.conftest import IN_CI
from tests.factories import make_channel, make_user
from tests.servers import InfluxDB, query

#: Stored values keyed as Fieldstation names fields, then by time in µs (None: the server's time).
Stored = dict[str, dict[int | None, float | str]]


# -- generated line protocol -------------------------------------------------------------------

#: Pieces of names: letters, the characters line protocol escapes, escapes, and stray backslashes.
_NAME_PIECES = ["a", "b", "Z", "é", "0", "_", "#", ":", "'", ",", "=", " ", '"', "\\", "\\,", "\\=", "\\ ",
                "\\\\", '\\"', "\\a", "time"]  # fmt: skip
_name = st.lists(st.sampled_from(_NAME_PIECES), min_size=0, max_size=5).map("".join)
_plain_name = st.text("abcxyz_-.", min_size=1, max_size=4)
# No unescaped quote inside a string and no lone backslash before its closing quote: a string left
# open so that it runs over the next lines is the open difference (docs/decisions.md);
# test_lineprotocol checks that `"test""` is refused.
_STRING_PIECES = ["a", " ", ",", "=", '\\"', "\\\\", "\\a", "\n", "\t", "\\n"]
_string = st.lists(st.sampled_from(_STRING_PIECES), max_size=6).map(lambda p: '"' + "".join(p) + '"')
_INT_EDGES = ["9223372036854775807", "9223372036854775808", "-9223372036854775808",
              "-9223372036854775809", "09223372036854775807", "-09223372036854775808",
              "00000000000000000000001", "0", "-0", "+1", "1_000", "0x10", "1e3", "1.5", "", "-"]  # fmt: skip
_FLOAT_EDGES = ["1", "-1", ".5", "5.", "-.5", "1e5", "1E+5", "1e-5", "1e", "1e500", "-1e-500", "1.5.5", "+1",
                "-", ".", "NaN", "nan", "inf", "-Inf", "0x1p3", "1_0", "٣", "1e5.5",
                "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000"
                "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                "000000000000000000000000000000000000000000000000000000000000000000000.5"]  # fmt: skip
_BOOLS = ["t", "T", "true", "True", "TRUE", "tRue", "f", "F", "false", "False", "FALSE", "fAlse", "yes"]
_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: f"{i}i"),
    st.sampled_from(_INT_EDGES).map(lambda s: s + "i"),
    st.sampled_from(_FLOAT_EDGES),
    st.sampled_from(_BOOLS),
    _string,
)
_TS_EDGES = ["9223372036854775806", "9223372036854775807", "9223372036854775808", "-9223372036854775806",
             "-9223372036854775807", "-9223372036854775808", "0", "-0", "00000000000000000000000005",
             "+5", "5x", "1e3", "1.5", "-", "99999999999999999999"]  # fmt: skip
_ts = st.one_of(
    st.none(),
    st.integers(-(2**62), 2**62).map(str),
    st.integers(0, 2**40).map(lambda i: str(i * 1000)),
    st.sampled_from(_TS_EDGES),
)
_gap = st.sampled_from([" ", " ", " ", "  ", "   "])
_precision = st.sampled_from(["", "n", "u", "ms", "s", "h"])


@st.composite
def _line(draw: st.DrawFn, number: int) -> str:
    odd = draw(st.integers(0, 9)) == 0  # one line in ten uses names made of any piece
    name = _name if odd else _plain_name
    measurement = f"m{number}_" + draw(name)
    tag_count = draw(st.sampled_from([0, 0, 1, 2, 3, 300]))
    if tag_count == 300:  # a long series key, with no draw per tag
        tags = "".join(f",k{i}=v{i}" for i in range(tag_count))
    else:
        tags = "".join(f",{draw(name)}={draw(name)}" for _ in range(tag_count))
    # Distinct keys: a key twice with two types makes InfluxDB refuse the points of that line's
    # shard (a week of time) and not the rest; Fieldstation refuses the request (tested apart).
    keys = draw(st.lists(name, min_size=1, max_size=3, unique_by=lambda k: k.replace("\\", "")))
    fields = ",".join(f"{key}={draw(_value)}" for key in keys)
    if draw(st.integers(0, 20)) == 0:
        fields += ","
    ts = draw(_ts)
    line = measurement + tags + draw(_gap) + fields
    if ts is not None:
        line += draw(_gap) + ts
    return (
        draw(st.sampled_from(["", "", "", " ", "  ", "\t"]))
        + line
        + draw(st.sampled_from(["", "", " ", "  "]))
    )


@st.composite
def _body(draw: st.DrawFn) -> str:
    count = draw(st.integers(1, 40))
    lines = [draw(_line(i)) for i in range(count)]
    extra = draw(st.sampled_from(["", "", "\n", "\n\n", "# comment", "   "]))
    if extra:
        lines.insert(draw(st.integers(0, count)), extra)
    return "\n".join(lines)


# -- the two servers -----------------------------------------------------------------------------

_databases = itertools.count()


def _post(url: str, data: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _recent(ts_us: int) -> bool:
    return abs(ts_us - time.time() * 1e6) < 3600e6


def influx_stored(server: InfluxDB, body: str, precision: str) -> tuple[int, set[str], Stored]:
    """Write ``body`` to a new database; the status, the series keys and the values stored."""
    database = f"d{next(_databases)}"
    query(server, f"CREATE DATABASE {database}")
    params = urllib.parse.urlencode({"db": database, "precision": precision})
    status, _ = _post(f"{server.url}/write?{params}", body.encode())
    keys_answer = query(server, "SHOW SERIES", db=database)
    series = json.loads(json.dumps(keys_answer))["results"][0].get("series", [])
    # SHOW SERIES lists a series even when its point was then dropped (a field type conflict); its
    # SELECT misses measurements with a backslash before a comma or space (InfluxDB unescapes
    # their names twice). So a line counts as stored when SELECT shows its values, or when
    # SHOW SERIES lists it with a backslash in its key; values are compared where SELECT shows them.
    unselectable = (
        {_line_number(row[0]) for row in series[0]["values"] if "\\" in row[0]} if series else set()
    )
    # One statement per line: SELECT * over several measurements keeps one type per field name.
    numbers = range(body.count("\n") + 1)
    statements = ";".join(f"SELECT * FROM /^m{n}_/ GROUP BY *" for n in numbers)
    answer = query(server, statements, db=database, epoch="ns")
    results = json.loads(json.dumps(answer))["results"]
    stored: Stored = {}
    for found in (one for result in results for one in result.get("series", [])):
        # GROUP BY * over several measurements names every tag key, empty where a series has none.
        tags = tuple(sorted((k, v) for k, v in found.get("tags", {}).items() if v))
        point = lp.LinePoint(found["name"], tags, (), None)
        for row in found["values"]:
            ts_us: int | None = row[0] // 1000
            if ts_us is not None and _recent(ts_us):
                ts_us = None
            for column, value in zip(found["columns"][1:], row[1:], strict=True):
                if value is not None:
                    number = float(value) if not isinstance(value, str) else value
                    stored.setdefault(point.field_name(column), {})[ts_us] = number
    query(server, f"DROP DATABASE {database}")
    selected = {_line_number(name) for name in stored}
    return status, selected | (unselectable - selected), stored


def fieldstation_stored(app: Flask, owner: User, body: str, precision: str) -> tuple[int, set[str], Stored]:
    """Write ``body`` to a new channel's ``/write``; the status, the series keys and the values stored."""
    channel = make_channel(owner, name=f"c{next(_databases)}", fields=[])
    params = urllib.parse.urlencode({"db": channel.channel.name, "precision": precision})
    answer = app.test_client().post(
        f"/write?{params}", data=body.encode(), headers={"Authorization": f"Token {channel.write_key}"}
    )
    stored: Stored = {}
    keys = set()
    for name, ts, value, text in readback.readings(channel.id):
        keys.add(_line_number(name))
        stored.setdefault(name, {})[None if _recent(ts) else ts] = text if value is None else value
    return answer.status_code, keys, stored


def _line_number(name: str) -> str:
    """The number of the line a series came from (its measurement starts ``m<number>_``)."""
    return name[1 : name.index("_")]


#: Bodies per run: thousands in CI (about 2.5 minutes), fewer on a developer's machine.
BODIES = 2000 if IN_CI else 150


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
@settings(
    max_examples=BODIES, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate]
)
@given(body=_body(), precision=_precision)
def test_line_protocol_matches_influxdb(
    app: Flask, influxdb: InfluxDB, engine_name: str, body: str, precision: str
) -> None:
    owner = _owner(app)
    influx_status, influx_keys, influx_values = influx_stored(influxdb, body, precision)
    # InfluxDB 1.6 answers some bodies whose strings swallow lines with a 500 ("engine: unknown
    # field type"), having stored part of them: nothing to compare against.
    assume(influx_status != 500)
    # A string that swallowed the lines after it (a quote left open) can outgrow what the
    # generator keeps strings under: outside the comparison, as the module's docstring says.
    strings = (v for kept in influx_values.values() for v in kept.values() if isinstance(v, str))
    assume(all(len(text) <= 255 for text in strings))
    status, keys, values = fieldstation_stored(app, owner, body, precision)
    assert keys == influx_keys, (
        precision,
        influx_status,
        body,
        _report(body, keys ^ influx_keys, values, influx_values),
    )
    shown = {_line_number(name) for name in influx_values}
    values = {name: v for name, v in values.items() if _line_number(name) in shown}
    differ = {_line_number(name) for name in values.keys() ^ influx_values.keys()}
    differ |= {_line_number(n) for n in values.keys() & influx_values.keys() if values[n] != influx_values[n]}
    assert not differ, _report(body, differ, values, influx_values)
    assert (status == 204) == (influx_status == 204), (status, influx_status, body)


def _report(body: str, numbers: set[str], values: Stored, influx_values: Stored) -> str:
    """The lines that came out differently, and what each server stored of them."""
    lines = [line for line in body.split("\n") if any(line.lstrip().startswith(f"m{n}_") for n in numbers)]
    ours = {k: v for k, v in values.items() if _line_number(k) in numbers}
    theirs = {k: v for k, v in influx_values.items() if _line_number(k) in numbers}
    return f"lines {sorted(numbers)}: {lines!r}\nFieldstation: {ours!r}\nInfluxDB: {theirs!r}"


def _owner(app: Flask) -> User:
    """The channels' owner, made by the first example (the database outlives examples)."""
    user = db.session.scalar(sa.select(User).where(User.username == "alice"))
    return user if user is not None else make_user().user


#: An open quote that InfluxDB's line splitter counts and its field scanner does not (the ``=`` in
#: the measurement counts for the first only) stretches line 0 over line 1. Without a timestamp
#: the fields end before the line break and the rest is ignored; with one, the rest is garbage.
STRETCHED = [' m0_=x a="p",b"c=1 \nm1_ d=2 6', ' m0_=x a="p",b"c=1 5 \nm1_ d=2 6']


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
@pytest.mark.parametrize("body", STRETCHED)
def test_a_line_an_open_quote_stretches_is_stored_as_influxdb_stores_it(
    app: Flask, influxdb: InfluxDB, engine_name: str, body: str
) -> None:
    influx_status, influx_keys, influx_values = influx_stored(influxdb, body, "s")
    status, keys, values = fieldstation_stored(app, _owner(app), body, "s")
    assert (status, keys, values) == (influx_status, influx_keys, influx_values)
    assert "1" not in keys  # line 1 was never a line of its own
