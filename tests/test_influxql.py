"""influxql: the parser of the supported InfluxQL subset, with property tests; seriesnames round trips."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldstation.influxql import (
    BinaryOp,
    Call,
    CreateDatabase,
    Duration,
    FieldRef,
    InfluxQLError,
    Number,
    Select,
    SelectColumn,
    Show,
    TagFilter,
    parse,
)
from fieldstation.seriesnames import SeriesName, parse_field_name
from fieldstation.tagmatch import AllOf, AnyOf

NOW = 1_700_000_000_000_000
H = 3_600_000_000


def one(q: str) -> object:
    (stmt,) = parse(q, NOW)
    return stmt


def test_client_select() -> None:
    stmt = one('SELECT "temperature" FROM "climate" WHERE time > now() - 1h')
    assert stmt == Select([SelectColumn("temperature")], "climate", start=NOW - H + 1)


def test_grafana_query_builder() -> None:
    stmt = one(
        'SELECT mean("value") AS "avg", max(value) FROM "autogen"."cpu" WHERE ("host" = \'a b\') '
        'AND time >= 1699996400000ms and time <= 1700000000000ms GROUP BY time(20s), "host" fill(null) '
        "ORDER BY time DESC LIMIT 10 tz('Europe/Berlin')"
    )
    assert isinstance(stmt, Select)
    assert stmt.columns == [SelectColumn("value", "mean", "avg"), SelectColumn("value", "max")]
    assert (stmt.retention, stmt.measurement) == ("autogen", "cpu")
    assert stmt.tags == [TagFilter("host", "=", "a b")]
    assert (stmt.start, stmt.end) == (NOW - H, NOW + 1)
    assert stmt.every == 20_000_000 and stmt.group_tags == ["host"] and stmt.fill == "null"
    assert stmt.descending and stmt.limit == 10 and stmt.tz == "Europe/Berlin"


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("time >= '2023-11-14T22:13:20Z'", NOW, None),
        ("time < 1700000000000000000", None, NOW),
        ("time <= 1700000000s", None, NOW + 1),
        ("time > now() - 6h AND time < now() + 1d", NOW - 6 * H + 1, NOW + 24 * H),
        ("time = 1700000000000000u", NOW, NOW + 1),
    ],
)
def test_time_conditions(text: str, start: int | None, end: int | None) -> None:
    stmt = one(f"SELECT v FROM m WHERE {text}")
    assert isinstance(stmt, Select) and (stmt.start, stmt.end) == (start, end)


def test_show_and_create_and_several_statements() -> None:
    statements = parse(
        'SHOW DATABASES; SHOW MEASUREMENTS ON "db" LIMIT 5; SHOW FIELD KEYS FROM "m"; SHOW TAG KEYS;'
        ' SHOW TAG VALUES FROM "m" WITH KEY = "room"; SHOW TAG VALUES WITH KEY IN ("a", "b");'
        ' SHOW RETENTION POLICIES ON x; CREATE DATABASE "sensors"',
        NOW,
    )
    assert statements == [
        Show("databases"),
        Show("measurements", database="db", limit=5),
        Show("field keys", measurement="m"),
        Show("tag keys"),
        Show("tag values", measurement="m", keys=("room",)),
        Show("tag values", keys=("a", "b")),
        Show("retention policies", database="x"),
        CreateDatabase("sensors"),
    ]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "DROP DATABASE x",
        "SELECT FROM m",
        "SELECT v FROM m WHERE v > 3",
        "SELECT v FROM m WHERE time > now() - 1h OR time < now()",
        "SELECT v + FROM m",
        "SELECT v FROM m GROUP BY time(1h)",
        "SELECT v FROM m WHERE host =~ /(?=a)/",
        "SELECT v FROM m WHERE host =~ /a",
        "SELECT v FROM m WHERE host = /a/",
        "SELECT v FROM m WHERE time =~ /a/",
        "SELECT v FROM m WHERE host = 'a' OR time > now() - 1h",
        "SELECT v FROM /(a/",
        "SHOW SERIES WHERE time > now() - 1h",
        "SHOW TAG VALUES WITH KEY =~ /\\1/",
        "SELECT v FROM m tz('Nowhere/Else')",
        "SELECT v FROM m WHERE time > 'yesterday'",
        "SELECT v FROM m WHERE time > 99999999999999999999999s",
        "SELECT v FROM m LIMIT -1",
        "SELECT v FROM m ORDER BY value",
        "SELECT v FROM m extra",
        "SELECT 'v' FROM m",
    ],
)
def test_outside_the_subset_is_an_influx_error(query: str) -> None:
    with pytest.raises(InfluxQLError, match="error parsing query"):
        parse(query, NOW)


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_influxql_error(text: str) -> None:
    try:
        parse(text, NOW)
    except InfluxQLError:
        pass


names = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=12
)
functions = st.sampled_from(["mean", "min", "max", "sum", "count", "first", "last"])


def quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(
    st.lists(st.tuples(functions, names), min_size=1, max_size=3),
    names,
    st.integers(1, 10**6),
    st.integers(1, 10**4),
)
def test_generated_aggregate_queries_round_trip(
    cols: list[tuple[str, str]], measurement: str, seconds: int, limit: int
) -> None:
    text = ", ".join(f"{fn}({quote(f)})" for fn, f in cols)
    stmt = one(
        f"SELECT {text} FROM {quote(measurement)} WHERE time > now() - {seconds}s"
        f" GROUP BY time({seconds}s) LIMIT {limit}"
    )
    assert isinstance(stmt, Select)
    assert [(c.function, c.field) for c in stmt.columns] == cols
    assert stmt.measurement == measurement and stmt.every == seconds * 10**6 and stmt.limit == limit


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("SELECT median(v, 2) FROM m", "invalid number of arguments for median, expected 1, got 2"),
        ("SELECT mean(mean(v)) FROM m", "expected field argument in mean()"),
        ("SELECT derivative(mean(v)) FROM m", "derivative aggregate requires a GROUP BY interval"),
        (
            "SELECT derivative(v) FROM m WHERE time > now() - 1h GROUP BY time(1m)",
            "aggregate function required inside the call to derivative",
        ),
        ("SELECT derivative(v, 2) FROM m", "second argument to derivative must be a duration"),
        ("SELECT top(v, 0) FROM m", "limit (0) in top function must be at least 1"),
        (
            "SELECT top(v, 2), mean(v) FROM m",
            "selector function top() cannot be combined with other functions",
        ),
        ("SELECT percentile(v, w) FROM m", "expected float argument in percentile()"),
        ("SELECT moving_average(v, 1) FROM m", "moving_average window must be greater than 1, got 1"),
        ("SELECT 2 * 3 FROM m", "field must contain at least one variable"),
        ("SELECT nope(v) FROM m", "undefined function nope()"),
        ("SELECT v, mean(v) FROM m", "mixing aggregate and non-aggregate queries is not supported"),
    ],
)
def test_statements_influxdb_refuses_when_it_runs(query: str, error: str) -> None:
    """Parsed, but refused as InfluxDB refuses them: a statement error in the result, not a 400."""
    stmt = one(query)
    assert isinstance(stmt, Select) and stmt.invalid == error


def test_expressions_and_their_column_names() -> None:
    stmt = one('SELECT mean("power") / 1000 + 1, -max(x), percentile(x, 95) AS p FROM m')
    assert isinstance(stmt, Select)
    assert [c.name for c in stmt.columns] == ["mean", "max", "p"]
    raw = one('SELECT ("a" + b) * 2, -x FROM m')
    assert isinstance(raw, Select) and [c.name for c in raw.columns] == ["a_b", "x"]
    assert stmt.columns[0].expr == BinaryOp(
        "+", BinaryOp("/", Call("mean", (FieldRef("power"),)), Number(1000.0, True)), Number(1.0, True)
    )
    assert stmt.columns[1].expr == BinaryOp("*", Number(-1.0, True), Call("max", (FieldRef("x"),)))
    deriv = one(
        "SELECT non_negative_derivative(mean(v), 1m) FROM m WHERE time > now() - 1h GROUP BY time(5m)"
    )
    assert isinstance(deriv, Select)
    assert deriv.columns[0].expr == Call(
        "non_negative_derivative", (Call("mean", (FieldRef("v"),)), Duration(60_000_000))
    )
    assert (
        one("SELECT mean(v) FROM m WHERE time > now() - 1h GROUP BY time(1m) fill(linear)").fill == "linear"
    )  # type: ignore[attr-defined]
    # A slash after an operand divides; after =~ or FROM it starts a regular expression.
    ratio = one("SELECT a / 2 / b FROM m")
    assert isinstance(ratio, Select) and ratio.columns[0].name == "a_b"


numbers = st.integers(0, 10**6).map(str) | st.floats(0, 1e6, allow_nan=False).map(repr)
operands = st.sampled_from(["x", '"y"', "mean(x)", "max(y)", "percentile(x, 90)", "spread(x)"]) | numbers


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return draw(operands)
    left, right = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    op = draw(st.sampled_from(["+", "-", "*", "/"]))
    return draw(st.sampled_from([f"{left} {op} {right}", f"({left}){op}{right}", f"-{left}"]))


@given(expressions())
def test_generated_expressions_parse_or_raise_influxql_error(text: str) -> None:
    """Any arithmetic over fields, calls and numbers parses to an expression naming its fields,
    or is refused as InfluxDB refuses it (mixing calls with raw fields, no field at all)."""
    try:
        stmt = one(f"SELECT {text} FROM m")
    except InfluxQLError as exc:
        refused: str | None = str(exc)
    else:
        refused = None
    if refused is not None:
        assert refused.startswith("error parsing query: ")
        return
    assert isinstance(stmt, Select)
    assert stmt.invalid is not None or stmt.columns[0].field in ("x", "y")


def escape(text: str, chars: str) -> str:
    out = text.replace("\\", "\\\\")
    for char in chars:
        out = out.replace(char, "\\" + char)
    return out


@given(names, st.dictionaries(names, names, max_size=3), names)
def test_line_protocol_field_names_round_trip(measurement: str, tags: dict[str, str], key: str) -> None:
    series = escape(measurement, ", ")
    series += "".join(f",{escape(k, ',= ')}={escape(v, ',= ')}" for k, v in sorted(tags.items()))
    name = f"{series} {escape(key, ',= ')}"
    assert parse_field_name(name, "chan") == SeriesName(measurement, tuple(sorted(tags.items())), key)


def test_plain_field_names_belong_to_the_channel_measurement() -> None:
    assert parse_field_name("temperature", "weather") == SeriesName("weather", (), "temperature")
    assert parse_field_name("climate,room=lab temperature", "w") == SeriesName(
        "climate", (("room", "lab"),), "temperature"
    )
    assert parse_field_name("a,b temperature", "w") == SeriesName("w", (), "a,b temperature")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT " + "-" * 5000 + "x FROM m",
        "SELECT " + " + ".join(["x"] * 300) + " FROM m",
        "SELECT " + "mean(" * 40 + "x" + ")" * 40 + " FROM m",
        "SELECT " + "(" * 40 + "x" + ")" * 40 + " FROM m",
    ],
)
def test_deep_expressions_are_refused_before_they_exhaust_the_stack(query: str) -> None:
    with pytest.raises(InfluxQLError, match="error parsing query"):
        parse(query, NOW)


# -- regular expressions, OR, series limits, SHOW filters ----------------------------------------


def test_grafana_multi_value_variable_and_regex_sources() -> None:
    stmt = one(
        'SELECT mean("v") FROM "db"."autogen"./^cl.*/ WHERE ("room" =~ /^(lab|a\\.b\\/c)$/ AND "host" !~ /x/)'
        " AND time > now() - 1h GROUP BY time(1m) LIMIT 5 OFFSET 2 SLIMIT 3 SOFFSET 1"
    )
    assert isinstance(stmt, Select)
    assert (stmt.database, stmt.retention, stmt.measurement, stmt.measurement_regex) == (
        "db",
        "autogen",
        "",
        "^cl.*",
    )
    assert stmt.tags == [TagFilter("room", "=~", "^(lab|a\\.b/c)$"), TagFilter("host", "!~", "x")]
    assert stmt.start == NOW - H + 1
    assert (stmt.limit, stmt.offset, stmt.slimit, stmt.soffset) == (5, 2, 3, 1)
    assert one("SELECT v FROM /a\\/b/").measurement_regex == "a/b"  # type: ignore[attr-defined]


def test_or_and_parentheses_make_a_tree_and_time_stays_outside() -> None:
    stmt = one(
        "SELECT v FROM m WHERE (a = 'x' OR b =~ /y/) AND time >= 0 AND (c != 'z' AND d = 'w' OR e = 'v')"
    )
    assert isinstance(stmt, Select) and stmt.start == 0
    assert stmt.tags == [
        AnyOf((TagFilter("a", "=", "x"), TagFilter("b", "=~", "y"))),
        AnyOf((AllOf((TagFilter("c", "!=", "z"), TagFilter("d", "=", "w"))), TagFilter("e", "=", "v"))),
    ]


def test_show_series_and_show_filters() -> None:
    statements = parse(
        "SHOW SERIES FROM /^c/ WHERE room = 'lab' LIMIT 2 OFFSET 1; SHOW TAG VALUES WITH KEY =~ /o/;"
        ' SHOW TAG VALUES FROM m WITH KEY != "room" WHERE a =~ /b/;'
        " SHOW MEASUREMENTS WITH MEASUREMENT =~ /x/;"
        " SHOW MEASUREMENTS WITH MEASUREMENT = m; SHOW TAG KEYS FROM /m/; SHOW FIELD KEYS ON d FROM /.*/",
        NOW,
    )
    assert statements == [
        Show("series", measurement_regex="^c", tags=(TagFilter("room", "=", "lab"),), limit=2, offset=1),
        Show("tag values", keys=("o",), key_op="=~"),
        Show("tag values", measurement="m", keys=("room",), key_op="!=", tags=(TagFilter("a", "=~", "b"),)),
        Show("measurements", measurement_regex="x"),
        Show("measurements", measurement="m"),
        Show("tag keys", measurement_regex="m"),
        Show("field keys", database="d", measurement_regex=".*"),
    ]


def test_regex_errors_name_the_pattern_in_influxdb_s_words() -> None:
    with pytest.raises(InfluxQLError) as caught:
        parse("SELECT temperature FROM climate WHERE room =~ /(?=a)/", NOW)
    assert caught.value.message == (
        "error parsing query: error parsing regexp: invalid or unsupported Perl syntax: `(?=`"
        " at line 1, char 46"
    )


_KEYS = ("a", "b", "c")
_VALUES = ("", "x", "y", "a/b", "A.B")


@st.composite
def _where(draw: st.DrawFn, depth: int = 0) -> tuple[str, object]:
    """A condition as text, and as a function of a tag dict (the meaning it must parse to)."""
    if depth < 3 and draw(st.booleans()):
        parts = draw(st.lists(_where(depth + 1), min_size=2, max_size=3))
        joiner = draw(st.sampled_from(["AND", "OR"]))
        text = "(" + f" {joiner} ".join(t for t, _ in parts) + ")"
        combine = all if joiner == "AND" else any
        return text, lambda tags: combine(f(tags) for _, f in parts)  # type: ignore[operator]
    key = draw(st.sampled_from(_KEYS))
    op = draw(st.sampled_from(["=", "!=", "<>", "=~", "!~"]))
    if op in ("=~", "!~"):
        pattern = draw(st.sampled_from(["^x$", "a\\/b", "(?i)a\\.b", "^$", "x|y", "[xy]"]))
        python = {
            "^x$": "^x$",
            "a\\/b": "a/b",
            "(?i)a\\.b": "(?i)a\\.b",
            "^$": "^$",
            "x|y": "x|y",
            "[xy]": "[xy]",
        }
        wanted = op == "=~"
        return (
            f'"{key}" {op} /{pattern}/',
            lambda tags: (re.search(python[pattern], tags.get(key, "")) is not None) == wanted,
        )
    value = draw(st.sampled_from(_VALUES))
    equal = op == "="
    return f"\"{key}\" {op} '{value}'", lambda tags: (tags.get(key, "") == value) == equal


@given(_where(), st.lists(st.dictionaries(st.sampled_from(_KEYS), st.sampled_from(_VALUES)), max_size=10))
def test_generated_where_clauses_mean_what_they_say(
    where: tuple[str, object], series: list[dict[str, str]]
) -> None:
    text, meaning = where
    stmt = one(f"SELECT v FROM m WHERE {text} AND time > 0")
    assert isinstance(stmt, Select) and stmt.start == 1
    for tags in series:
        parsed = all(c.holds(lambda k, tags=tags: tags.get(k, "")) for c in stmt.tags)  # type: ignore[misc]
        assert parsed == meaning(tags), (text, tags)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("group", "origin"),
    [
        ("time(1h, 15m)", 15 * 60_000_000),
        ("time(1h, -15m)", -15 * 60_000_000),  # Go's remainder keeps the sign (DST makes it matter)
        ("time(1d, 30h)", 6 * H),
        ("time(1d, -30h)", -6 * H),
        ("time(10m, 15m + 1m)", 6 * 60_000_000),
        ("time(1h, 0s)", 0),
    ],
)
def test_group_by_time_offsets(group: str, origin: int) -> None:
    stmt = one(f"SELECT mean(v) FROM m WHERE time > now() - 1d GROUP BY {group}")
    assert isinstance(stmt, Select) and stmt.invalid is None
    assert stmt.origin == origin


def test_now_as_an_offset_counts_from_go_s_zero_time() -> None:
    """InfluxDB truncates now() by the interval from year 1, which is not the epoch for weeks."""
    week = 7 * 24 * H
    stmt = one("SELECT mean(v) FROM m WHERE time > now() - 30d GROUP BY time(1w, now())")
    assert isinstance(stmt, Select)
    assert stmt.origin == (NOW + 62_135_596_800_000_000) % week != NOW % week
    hourly = one("SELECT mean(v) FROM m WHERE time > now() - 1d GROUP BY time(1h, now())")
    assert isinstance(hourly, Select) and hourly.origin == NOW % H


def test_subquery_source_and_conditions_on_its_fields() -> None:
    """``FROM (SELECT …)``: the inner statement whole, the outer WHERE's field conditions apart."""
    stmt = one(
        'SELECT sum("p") FROM (SELECT mean("power") AS "p" FROM "energy" WHERE time > now() - 1h '
        'GROUP BY time(1m), "device") WHERE "p" > -5 AND "device" = \'a\' GROUP BY time(1h) fill(none)'
    )
    assert isinstance(stmt, Select) and stmt.subquery is not None
    assert stmt.subquery.columns == [SelectColumn("power", "mean", "p")]
    assert (stmt.subquery.every, stmt.subquery.group_tags, stmt.subquery.start) == (
        60_000_000,
        ["device"],
        NOW - H + 1,
    )
    assert (stmt.measurement, stmt.every, stmt.fill, stmt.start) == ("", H, "none", None)
    assert [(f.key, f.op, f.value) for f in stmt.field_filters] == [("p", ">", -5.0)]
    assert stmt.tags == [TagFilter("device", "=", "a")]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT a FROM (SELECT b FROM (SELECT c FROM m))",
        "SELECT a FROM (SELECT b FROM m), n",
        'SELECT a FROM (SELECT b FROM m) WHERE "a" > 1 OR "a" < 0',
        "SELECT a FROM m WHERE a > 1",
        "SELECT a FROM (SELECT b FROM m",
        "SELECT a FROM (SHOW DATABASES)",
    ],
)
def test_subqueries_outside_the_subset_are_influx_errors(query: str) -> None:
    with pytest.raises(InfluxQLError, match="error parsing query"):
        parse(query, NOW)


_SUBQUERY_PIECES = st.sampled_from(
    ["SELECT", "FROM", "(", ")", "(SELECT", 'mean("v")', '"mean"', "*", ",", "WHERE", "time > now() - 1h",
     "AND", "OR", '"mean" > 5', '"mean" <> -1.5', "\"t\" = 'a'", "GROUP BY", "time(1m)", '"t"', "fill(none)",
     "LIMIT 2", "m", "AS", "p", ";"]
)  # fmt: skip


@given(st.lists(_SUBQUERY_PIECES, max_size=20))
def test_subquery_shapes_parse_or_raise_influxql_error(pieces: list[str]) -> None:
    try:
        parse('SELECT sum("mean") FROM (' + " ".join(pieces), NOW)
    except InfluxQLError:
        pass
