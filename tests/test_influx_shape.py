"""InfluxQL's shapes against a real InfluxDB 1.6: regular expressions, OR, SELECT * with tags,
GROUP BY *, SLIMIT/SOFFSET/OFFSET, tz() in returned times, SHOW SERIES and SHOW's filters.

Each test writes the same points to both servers (tests/influxdiff.py) and asserts that
every query gets the same JSON answer (errors: the same status, and where the test says
so the same text). Rows of several series at one time are compared as a set (the
harness does: InfluxDB merges its series' cursors with Go's heap, in no defined order),
so LIMIT/OFFSET here never cut through them.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.influxdiff import Twin, twin  # noqa: F401  (the fixture)
from tests.test_influxregex import _pattern

T0 = 1_577_836_800  # 2020-01-01T00:00:00Z, in seconds

POINTS = "\n".join(
    [
        *(
            f"climate,device=esp01,room=lab temperature={20 + i},humidity={50 + i} {T0 + 60 * i}"
            for i in range(5)
        ),
        *(f"climate,device=esp02,room=hall temperature={10 + i} {T0 + 60 * i}" for i in range(5)),
        f"climate,device=esp03,room=a.b/c temperature=5 {T0 + 60}",
        f"climate,room=cellar temperature=7 {T0 + 120}",
        f"climate,device=esp04,room=lab temperature=30 {T0 + 120}",
        f"power,phase=L1 watts=100 {T0}",
        f"power,phase=L2 watts=200 {T0}",
        f"power,phase=L2 watts=250 {T0 + 60}",
        f"plain battery=3.7 {T0}",
        f"we\\ ird\\,m,ta\\ g=v\\,a\\=l\\ x f=1 {T0}",
    ]
)

WINDOW = f"time >= {T0}s AND time < {T0 + 600}s"


@pytest.fixture
def loaded(twin: Twin) -> Twin:  # noqa: F811
    twin.write(POINTS, precision="s")
    return twin


REGEX_QUERIES = [
    "SELECT temperature FROM climate WHERE room =~ /^(lab|hall)$/",
    "SELECT temperature FROM climate WHERE room !~ /^(lab|hall)$/",
    "SELECT temperature FROM climate WHERE room =~ /^a\\.b\\/c$/",
    "SELECT temperature FROM climate WHERE room =~ /b\\/c/",
    "SELECT temperature FROM climate WHERE device =~ /^$/",
    "SELECT temperature FROM climate WHERE device !~ /./",
    "SELECT temperature FROM climate WHERE nokey =~ /^$/",
    "SELECT temperature FROM climate WHERE room =~ /(?i)LAB/ AND device = 'esp01'",
    "SELECT temperature FROM climate WHERE room =~ /x{,2}/",
    "SELECT temperature FROM climate WHERE room =~ /[[:alpha:]]{4}/",
    "SELECT temperature FROM climate WHERE (room = 'lab' OR room = 'hall') AND " + WINDOW,
    "SELECT temperature FROM climate WHERE room =~ /^(lab|hall)$/ OR device = 'esp03'",
    "SELECT temperature FROM climate WHERE (room = 'lab' AND device = 'esp04') OR (room = 'hall')",
    'SELECT mean("temperature") FROM "climate" WHERE ("room" =~ /^(lab|hall)$/) AND '
    + WINDOW
    + ' GROUP BY time(2m), "room" fill(null)',
    "SELECT temperature FROM /^cli/",
    "SELECT * FROM /^(climate|power)$/",
    "SELECT * FROM /^(climate|power)$/ GROUP BY *",
    "SELECT sum(watts) FROM /^p/ WHERE " + WINDOW,
    "SELECT temperature FROM /nothing/",
]


def test_regular_expressions_and_or_as_influxdb(loaded: Twin) -> None:
    for q in REGEX_QUERIES:
        loaded.compare(q)


BAD_REGEX = [
    "SELECT temperature FROM climate WHERE room =~ /(?=a)/",
    "SELECT temperature FROM climate WHERE room =~ /(a)\\1/",
    "SELECT temperature FROM climate WHERE room =~ /a{1001}/",
    "SELECT temperature FROM climate WHERE room =~ /a**/",
    "SELECT temperature FROM climate WHERE room =~ /[z-a]/",
    "SELECT temperature FROM climate WHERE room =~ /\\Z/",
    "SELECT temperature FROM /(?=a)/",
    "SHOW TAG VALUES WITH KEY =~ /(a/",
    "SELECT temperature FROM climate WHERE room =~ /a/ AND device =~ /[[:nope:]]/",
    "SELECT temperature FROM climate WHERE room =~ /abc",
]


def test_patterns_re2_refuses_are_refused_in_influxdb_s_words(loaded: Twin) -> None:
    for q in BAD_REGEX:
        loaded.compare(q, exact_errors=True)


SHAPE_QUERIES = [
    "SELECT * FROM climate",
    "SELECT * FROM climate GROUP BY *",
    "SELECT * FROM climate GROUP BY room",
    "SELECT room, temperature FROM climate",
    "SELECT temperature, room FROM climate",
    "SELECT device, temperature FROM climate",
    "SELECT temperature, room FROM climate GROUP BY device",
    "SELECT room FROM climate",
    "SELECT temperature FROM climate GROUP BY *",
    "SELECT temperature FROM climate GROUP BY * SLIMIT 2 SOFFSET 1",
    "SELECT temperature FROM climate GROUP BY room, device SLIMIT 2",
    "SELECT temperature FROM climate GROUP BY * SLIMIT 1 SOFFSET 4",
    "SELECT temperature FROM climate GROUP BY * SLIMIT 3 SOFFSET 4",
    "SELECT temperature FROM climate GROUP BY * SLIMIT 3 SOFFSET 9",
    "SELECT temperature FROM climate GROUP BY * SOFFSET 1",
    "SELECT temperature FROM climate GROUP BY room SLIMIT 1 SOFFSET 1",
    "SELECT * FROM /^(climate|power)$/ GROUP BY * SLIMIT 1 SOFFSET 1",
    "SELECT * FROM climate WHERE device = 'esp02'",
    "SELECT * FROM climate WHERE device = 'esp02' GROUP BY *",
    "SELECT temperature FROM climate GROUP BY * LIMIT 1 OFFSET 1",
    "SELECT temperature FROM climate LIMIT 3 OFFSET 2",
    "SELECT temperature FROM climate WHERE device = 'esp01' LIMIT 2 OFFSET 1",
    "SELECT count(temperature) FROM climate GROUP BY room SLIMIT 2 SOFFSET 1",
    "SELECT mean(temperature) FROM climate WHERE " + WINDOW + " GROUP BY time(1m) LIMIT 2 OFFSET 1",
    "SELECT * FROM power",
    "SELECT * FROM plain",
]


def test_select_star_tags_group_by_and_series_limits_as_influxdb(loaded: Twin) -> None:
    for q in SHAPE_QUERIES:
        loaded.compare(q)


ZONES = ["Europe/Berlin", "Asia/Kolkata", "America/St_Johns", "Europe/London", "UTC"]


def test_tz_shows_in_returned_times_as_influxdb(twin: Twin) -> None:  # noqa: F811
    # Around Berlin's spring change (2020-03-29 01:00 UTC), and a point at a fraction of a second.
    change = 1_585_443_600
    twin.write(
        "\n".join(f"m,s=a v={i} {(change - 7200 + 1800 * i) * 1000}" for i in range(8)), precision="ms"
    )
    twin.write(f"m,s=a v=99 {change * 1000 + 500}", precision="ms")
    window = f"time >= {change - 7200}s AND time < {change + 7200}s"
    for zone in ZONES:
        for q in (
            f"SELECT v FROM m WHERE {window} tz('{zone}')",
            f"SELECT last(v) FROM m WHERE {window} tz('{zone}')",
        ):
            twin.compare(q)
    # Every width aligns to local time, as in InfluxDB (half-hour zones too), across the change.
    for zone in ZONES:
        twin.compare(f"SELECT max(v) FROM m WHERE {window} GROUP BY time(1h) tz('{zone}')")
        twin.compare(f"SELECT max(v) FROM m WHERE {window} GROUP BY time(2h) tz('{zone}')")
        twin.compare(f"SELECT max(v) FROM m WHERE {window} GROUP BY time(1d) tz('{zone}')")
    twin.compare(f"SELECT v FROM m WHERE {window} tz('Europe/Berlin')", epoch="ms")
    twin.compare("SELECT v FROM m tz('Nowhere/Else')", exact_errors=True)


SHOW_QUERIES = [
    "SHOW SERIES",
    "SHOW SERIES FROM climate",
    "SHOW SERIES FROM climate WHERE room =~ /a/ LIMIT 2 OFFSET 1",
    "SHOW SERIES WHERE room = 'lab'",
    "SHOW SERIES FROM /^c/",
    "SHOW SERIES LIMIT 2 OFFSET 8",
    "SHOW SERIES LIMIT 3 OFFSET 9",
    "SHOW TAG VALUES WITH KEY =~ /o/",
    "SHOW TAG VALUES WITH KEY !~ /o/",
    'SHOW TAG VALUES WITH KEY != "room"',
    'SHOW TAG VALUES FROM climate WITH KEY IN ("room", "device") WHERE room != \'lab\'',
    'SHOW TAG VALUES FROM climate WITH KEY = "room" WHERE device =~ /^esp0[12]$/',
    'SHOW TAG VALUES FROM climate WITH KEY = "room" LIMIT 2 OFFSET 1',
    "SHOW MEASUREMENTS WITH MEASUREMENT =~ /^c|^p/",
    "SHOW MEASUREMENTS WITH MEASUREMENT = climate",
    "SHOW MEASUREMENTS WHERE room = 'lab'",
    "SHOW MEASUREMENTS LIMIT 2 OFFSET 1",
    "SHOW FIELD KEYS FROM /.*/",
    "SHOW TAG KEYS FROM /m/",
    "SHOW TAG KEYS WHERE room = 'lab'",
]


def test_show_statements_as_influxdb(loaded: Twin) -> None:
    for q in SHOW_QUERIES:
        loaded.compare(q)


# -- generated: tag conditions with =, !=, =~, !~, AND, OR and parentheses ----------------------

_TAGS = {"room": ["lab", "hall", "a.b/c", "cellar", ""], "device": ["esp01", "esp02", "esp03", "esp04", ""]}
_PATTERNS = ["^lab$", "^(lab|hall)$", "a", "^$", ".", "b\\/c", "^esp0[1-3]$", "(?i)HALL", "l.b", "^[^e]"]


@st.composite
def _condition(draw: st.DrawFn, depth: int = 0) -> str:
    if depth < 2 and draw(st.booleans()):
        joiner = draw(st.sampled_from([" AND ", " OR "]))
        parts = draw(st.lists(_condition(depth + 1), min_size=2, max_size=3))
        return "(" + joiner.join(parts) + ")"
    key = draw(st.sampled_from(sorted(_TAGS)))
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    if op in ("=", "!="):
        return f"\"{key}\" {op} '{draw(st.sampled_from(_TAGS[key]))}'"
    return f'"{key}" {op} /{draw(st.sampled_from(_PATTERNS))}/'


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(data=st.data())
def test_generated_tag_conditions_select_what_influxdb_selects(loaded: Twin, data: st.DataObject) -> None:
    condition = data.draw(_condition())
    select = data.draw(st.sampled_from(["temperature", "*", "temperature, room", "count(temperature)"]))
    group = data.draw(st.sampled_from(["", " GROUP BY *", " GROUP BY room"]))
    loaded.compare(f"SELECT {select} FROM climate WHERE {condition}{group}")
    loaded.compare(f"SHOW SERIES WHERE {condition}")


WITH_FUNCTIONS = [
    'SELECT mean("temperature") FROM /^cli/ WHERE "room" =~ /^(lab|hall)$/ AND '
    + WINDOW
    + " GROUP BY time(1m), \"room\" fill(none) tz('Europe/Berlin')",
    "SELECT median(temperature) FROM climate WHERE " + WINDOW + " GROUP BY * SLIMIT 2 SOFFSET 1",
    "SELECT max(temperature) * 2 FROM climate WHERE room !~ /^c/ AND device = 'esp01' tz('Asia/Kolkata')",
    "SELECT derivative(mean(temperature), 1m) FROM climate WHERE "
    + WINDOW
    + " GROUP BY time(1m), room LIMIT 2 OFFSET 1",
    "SELECT temperature * 2 FROM climate WHERE device = 'esp01' LIMIT 2 OFFSET 1 tz('Europe/Berlin')",
    "SELECT spread(watts) FROM /^(power|plain)$/ WHERE " + WINDOW + " GROUP BY *",
    "SELECT count(temperature) FROM climate WHERE (room = 'lab' OR device =~ /3$/) AND " + WINDOW,
]


def test_shapes_through_the_functions_as_influxdb(loaded: Twin) -> None:
    for q in WITH_FUNCTIONS:
        loaded.compare(q)


# -- generated patterns: the RE2 reader against Go's RE2 in InfluxDB -------------------------------

_VALUES = [
    "lab",
    "hall",
    "LAB",
    "a.b/c",
    "Lab-2",
    "x_y",
    "ü",
    "Ünit",
    "123",
    "aaa",
    "a1b2",
    "K",
    "x{2}",
    "[x]",
]
_RE2_EXTRAS = st.sampled_from(
    ["\\pL", "\\p{Lu}", "\\PN", "[[:alpha:]]", "[[:^digit:]]+", "x{,2}", "(?i)lab", "(?i:ü)", "\\Qa.b\\E",
     "\\x{fc}", "[^\\d]", "\\bb", "^(lab|hall)$", "(?s).", "(?m)^a", "a{2}", "[\\]x]", "x\\{2\\}", "x{2}"]
)  # fmt: skip


@pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(data=st.data())
def test_generated_patterns_match_as_influxdb_s_re2(twin: Twin, data: st.DataObject) -> None:  # noqa: F811
    """Patterns in RE2's syntax, including where Python's re reads them otherwise, over tag values
    with dots, slashes, cases and non-ASCII letters: the same values match in both servers."""
    if not twin.answers("SHOW SERIES")[0].body["results"][0].get("series"):
        twin.write("\n".join(f"names,t={v} v=1 {T0 + i}" for i, v in enumerate(_VALUES)), precision="s")
    pattern = data.draw(st.one_of(_pattern(), _RE2_EXTRAS, st.tuples(_pattern(), _RE2_EXTRAS).map("".join)))
    op = data.draw(st.sampled_from(["=~", "!~"]))
    twin.compare(f'SHOW TAG VALUES FROM names WITH KEY = "t" WHERE t {op} /{pattern}/')
