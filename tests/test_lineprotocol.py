"""Line protocol parser: the influxdb client's and Telegraf's lines, every escape, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldstation import lineprotocol as lp
from fieldstation.points import UNSTORABLE


def test_influxdb_client_lines() -> None:
    """The captured lines of docs/clients.md §3."""
    parsed = lp.parse(
        'climate,device=esp01,room=lab humidity=55i,note="a b",ok=True,temperature=21.5 1577836800000000000\n'
        'cli\\ mate,dev\\ ice=a\\,b\\=c b=False,f=1.0,neg=-3i,s="say \\"hi\\"" 1577836800000\n',
    )
    first, second = parsed.points
    assert parsed.rejected == []
    assert first.measurement == "climate" and first.tags == (("device", "esp01"), ("room", "lab"))
    assert first.fields == (("humidity", 55.0), ("note", "a b"), ("ok", 1.0), ("temperature", 21.5))
    assert first.ts == 1_577_836_800_000_000
    assert first.field_name("temperature") == "climate,device=esp01,room=lab temperature"
    assert second.measurement == "cli mate" and second.tags == (("dev ice", "a,b=c"),)
    assert dict(second.fields) == {"b": 0.0, "f": 1.0, "neg": -3.0, "s": 'say "hi"'}
    assert second.ts == 1_577_836_800  # 1577836800000 ns -> µs
    assert second.series == "cli\\ mate,dev\\ ice=a\\,b\\=c"


@pytest.mark.parametrize(
    ("precision", "ts_us"),
    [("", 1), ("n", 1), ("u", 1000), ("ms", 1_000_000), ("s", 10**9), ("m", 6 * 10**10), ("h", 36 * 10**11)],
)
def test_precisions(precision: str, ts_us: int) -> None:
    (point,) = lp.parse("m v=1 1000", precision).points
    assert point.ts == ts_us


def test_unknown_precision_is_an_error() -> None:
    with pytest.raises(ValueError, match="precision"):
        lp.parse("m v=1", "fortnight")


def test_comments_blank_lines_crlf_and_no_timestamp() -> None:
    parsed = lp.parse("# comment\n\n  m,t=1 v=1u\r\nm v=t\n")
    assert [p.fields for p in parsed.points] == [(("v", 1.0),), (("v", 1.0),)]
    assert [p.ts for p in parsed.points] == [None, None]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("m", "missing fields"),
        ("m ", "invalid field format"),
        (",t=1 v=1", "missing measurement"),
        ("m,t v=1", "missing tag value"),
        ("m,t=1,t=2 v=1", "duplicate tag"),
        ("m v", "invalid field format"),
        ("m v=", "missing field value"),
        ("m v=nan", "invalid number"),
        ("m v=inf", "invalid boolean"),
        ("m v=1e999", "invalid float"),
        ("m v=1_000", "invalid number"),
        ("m v=1.5i", "invalid number"),
        ("m v=-1u", "out of range"),
        ("m v=99999999999999999999i", "out of range"),
        ('m v="open', "unbalanced quotes"),
        ("m v=1 12x", "bad timestamp"),
        ("m v=1 99999999999999999999", "out of int64's range"),
        ("m v=1 1 2", "point is invalid"),
        ('m v="' + "x" * 300 + '"', "at most 255"),
    ],
)
def test_bad_lines_are_reported_with_number_and_reason(line: str, reason: str) -> None:
    parsed = lp.parse(f"ok v=1\n{line}\n")
    assert len(parsed.points) == 1
    (rejected,) = parsed.rejected
    assert rejected.number == 2 and reason in rejected.reason
    assert str(rejected).startswith(f"unable to parse '{line[:200]}")


# -- properties ------------------------------------------------------------------------------

_name = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=12).filter(
    lambda s: not s.startswith("#") and s.strip(" ") == s
)
_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: ("i", i)),
    st.booleans(),
    # Storable text (no controls but tab: points.UNSTORABLE); line breaks end a line.
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"), max_size=40).filter(
        lambda s: not UNSTORABLE.search(s)
    ),
)


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return f"{value[1]}i"
    if isinstance(value, float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _expected(value: object) -> float | str:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, tuple):
        return float(value[1])
    return value  # type: ignore[return-value]


#: InfluxDB's clients escape commas, equals signs and spaces, never backslashes: a name with a
#: backslash before one of those (or at its end) cannot be written so that it reads back.
_writable = _name.filter(lambda s: "\\" not in s and s != "time")


@given(
    measurement=_writable,
    tags=st.dictionaries(_writable, _writable, max_size=3),
    fields=st.dictionaries(_writable, _value, min_size=1, max_size=4),
    ts=st.one_of(st.none(), st.integers(-(2**63) + 2, 2**63 - 2)),
)
def test_what_is_written_is_what_is_parsed(
    measurement: str, tags: dict[str, str], fields: dict[str, object], ts: int | None
) -> None:
    line = lp.escape_measurement(measurement)
    line += "".join(f",{lp.escape_key(k)}={lp.escape_key(v)}" for k, v in tags.items())
    line += " " + ",".join(f"{lp.escape_key(k)}={_render(v)}" for k, v in fields.items())
    if ts is not None:
        line += f" {ts}"
    parsed = lp.parse(line)
    assert parsed.rejected == [], parsed.rejected
    (point,) = parsed.points
    assert point.measurement == measurement
    assert point.tags == tuple(sorted(tags.items()))
    assert point.fields == tuple((k, _expected(v)) for k, v in fields.items())
    assert point.ts == (None if ts is None else ts // 1000)


@given(st.text(max_size=300), st.sampled_from(list(lp.PRECISION_NS)))
def test_any_text_parses_or_is_reported_never_raises(text: str, precision: str) -> None:
    parsed = lp.parse(text, precision)
    lines = [
        line for line in text.split("\n") if line.strip(" \t\r") and not line.lstrip(" \t").startswith("#")
    ]
    assert len(parsed.points) + len(parsed.rejected) == len(lines)
    for point in parsed.points:
        assert point.measurement and point.fields
        for _, value in point.fields:
            assert isinstance(value, str) or value == value  # no NaN


@given(st.text(st.sampled_from('ab,= 1.-i"\\tTf#\r'), min_size=1, max_size=40))
def test_fast_path_agrees_with_full_parser(line: str) -> None:
    def outcome(parse: object) -> object:
        try:
            return parse(line)  # type: ignore[operator]
        except lp.LineError as exc:
            return ("error", str(exc))

    assert outcome(lp.parse_line) == outcome(lp.parse_line_slow)


@given(st.text(st.sampled_from("0123456789+-.eE_na\u0662\t"), min_size=1, max_size=12))
def test_numbers_are_what_influxdb_takes(raw: str) -> None:
    """A float value parses exactly when it matches InfluxDB's grammar (ASCII digits, no leading "+")."""
    import math
    import re

    grammar = re.fullmatch(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", raw)
    parsed = lp.parse(f"m v={raw}")
    if grammar and math.isfinite(float(raw)):
        assert parsed.points and parsed.points[0].fields == (("v", float(raw)),)
    else:
        assert not parsed.points


# -- parse_columns: the write path's form of a body (#3) -------------------------------------


def _columns_of(parsed: lp.Parsed) -> tuple[dict[str, dict[int | None, float | str]], list[int | None], int]:
    """What parse_columns must give: the points' values by field name and time, later lines winning."""
    values: dict[str, dict[int | None, float | str]] = {}
    times: dict[int | None, None] = {}
    for point in parsed.points:
        for key, value in point.fields:
            values.setdefault(point.field_name(key), {})[point.ts] = value
        times[point.ts] = None
    return values, list(times), len(parsed.points)


_plain_char = st.sampled_from("ab,= 1.-+eEi_tTf#\t\r\u0662")  # no escapes or strings: the fast path
_any_char = st.sampled_from('ab,= 1.-eEitf#\t\r"\\')
_series = st.sampled_from(
    ["m", "cpu,host=a", "cpu,host=b", "cpu,z=1,a=2", "cpu,a=2,z=1", "a\\ b,t=x\\,y", "m=1,t=2"]
    + ["m,t=a=b", "m,t", "m,", ",t=1", "m,t=1,t=2", "m,=1", "m,t="]  # each one is refused
)
_good_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: f"{i}i"),
    st.sampled_from(["t", "false", "1e3", ".5", "-0", "1e999", "1=2", "", '"s p"', '"q\\"t"']),
)
_line = st.builds(
    lambda start, series, fields, ts: f"{start}{series} {','.join(f'{k}={v}' for k, v in fields)}{ts}",
    st.sampled_from(["", "", "", " ", "\t", "#"]),
    _series,
    st.lists(st.tuples(st.sampled_from(["a", "b", "", "c\\ d"]), _good_value), min_size=1, max_size=3),
    st.sampled_from(["", " 1", " 2", " 1000", " -5", " 1x", " 99999999999999999999"]),
)


@given(
    lines=st.lists(st.one_of(_line, st.text(_plain_char, max_size=24)), max_size=12),
    precision=st.sampled_from(list(lp.PRECISION_NS)),
    end=st.sampled_from(["\n", "\r\n"]),
)
def test_columns_are_the_points_of_plain_bodies(lines: list[str], precision: str, end: str) -> None:
    """Bodies without escapes or strings take the fast path; it keeps every line's fate and value."""
    lines = [line for line in lines if "\\" not in line and '"' not in line]
    _assert_same_columns(end.join(lines), precision)


@given(
    lines=st.lists(st.one_of(_line, st.text(_any_char, max_size=24)), max_size=12),
    precision=st.sampled_from(list(lp.PRECISION_NS)),
)
def test_columns_are_the_points_of_any_body(lines: list[str], precision: str) -> None:
    _assert_same_columns("\n".join(lines), precision)


def _assert_same_columns(text: str, precision: str) -> None:
    """Both parsers read ``text`` alike: the same columns, or both refuse it for a type conflict."""
    try:
        parsed = lp.parse(text, precision)
    except lp.FieldTypeConflict:
        with pytest.raises(lp.FieldTypeConflict):
            lp.parse_columns(text, precision)
        return
    columns = lp.parse_columns(text, precision)
    assert (columns.values, list(columns.times), columns.lines) == _columns_of(parsed)
    assert columns.rejected == parsed.rejected


def test_columns_later_lines_win_and_times_keep_first_appearance() -> None:
    body = "m,b=2,a=1 v=1 20\nm v=5 10\nm,a=1,b=2 v=2,w=3 20\nbad\nm v=6 10\n"
    columns = lp.parse_columns(body, "ms")
    assert columns.values == {
        "m,a=1,b=2 v": {20_000: 2.0},
        "m,a=1,b=2 w": {20_000: 3.0},
        "m v": {10_000: 6.0},
    }
    assert list(columns.times) == [20_000, 10_000] and columns.lines == 4
    assert [(r.number, r.line) for r in columns.rejected] == [(4, "bad")]


#: Values that a float field or an integer field (``…i``) must not take, or not in that form.
_BAD_FLOATS = ["1e999", "-1e999", "1..2", "0x10", "1_0", "inf", "nan", "1i", "t", "", "1=2", "1e", ".", "١"]
_BAD_INTEGERS = ["9223372036854775808i", "-9223372036854775809i", "000000000000000000001i", "+-1i", "1i1"]
_BAD_INTEGERS += ["-i", "1", "12", "1u", "t", "", "1=2", "1ii"]
_BAD_STAMPS = [" x", " -5", " 1 2", "", " 99999999999999999999", " 000000000000000000001", " +1", " 1.5"]


@st.composite
def _regular_body(draw: st.DrawFn) -> str:
    """A body as devices send it in bulk (series with a fixed set of fields), maybe with one flaw."""
    names = st.sampled_from(["m", "m,h=1", "m,z=2,h=1", "m,h=1,z=2", "n"])
    keys = st.lists(st.sampled_from(["a", "b", "c", "t_1"]), min_size=1, max_size=3, unique=True)
    layouts = {series: draw(keys) for series in draw(st.lists(names, min_size=1))}
    # A field's values are all floats or all integers, as InfluxDB requires of a field.
    floats = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["1", "-0", "+.5", "1E-3"]),
    )
    integers = st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(lambda i: f"{i}i"), st.sampled_from(["007i", "+7i"])
    )
    is_float = {key: draw(st.booleans()) for key in ["a", "b", "c", "t_1", "zz"]}
    used: list[str] = []

    def stamp() -> str:  # mostly a new time; sometimes one used before, or none
        text = draw(st.sampled_from([*used, " ", ""] if used and draw(st.integers(0, 9)) == 7 else [""]))
        text = text or f" {(len(used) + 1) * 1000:0{draw(st.integers(1, 7))}d}"  # apart in any precision
        used.append(text)
        return text

    def values(keys: list[str]) -> list[str]:
        return [draw(floats if is_float[key] else integers) for key in keys]

    def line(series: str, keys: list[str], values: list[str], ts: str) -> str:
        return f"{series} {','.join(f'{k}={v}' for k, v in zip(keys, values, strict=True))}{ts}"

    lines = []
    for _ in range(draw(st.integers(1, 8))):
        series = draw(st.sampled_from(sorted(layouts)))
        lines.append(line(series, layouts[series], values(layouts[series]), stamp()))
    if draw(st.booleans()):  # one flawed copy of a line: a value, the keys, the time or the shape
        series = draw(st.sampled_from(sorted(layouts)))
        fields = list(layouts[series])
        given = values(fields)
        ts = stamp()
        flaw = draw(st.sampled_from(["value", "keys", "shift", "time", "start"]))
        if flaw == "value":
            at = draw(st.integers(0, len(fields) - 1))
            given[at] = draw(st.sampled_from(_BAD_FLOATS if is_float[fields[at]] else _BAD_INTEGERS))
        elif flaw == "keys":
            fields, given = draw(
                st.sampled_from(
                    [
                        (fields + fields[:1], given + given[:1]),  # a key twice
                        (fields[1:], given[1:]) if len(fields) > 1 else (["zz"], given),  # one missing
                        (fields + ["zz"], given + values(["zz"])),  # one more
                        (fields[::-1], given[::-1]),  # another order
                        ([""] + fields[1:], given),  # an empty key
                    ]
                )
            )
        elif flaw == "time":
            ts = draw(st.sampled_from(_BAD_STAMPS))
        elif flaw == "start":
            series = draw(st.sampled_from([" ", "\t", "#"])) + series
        text = line(series, fields, given, ts)
        if flaw == "shift" and "," in text.split(" ")[1]:  # a=1,b=2 -> a=1=b,2: the same count of "="
            head, _, tail = text.partition(",")
            key, _, rest = tail.partition("=")
            text = f"{head}={key},{rest}"
        lines.insert(draw(st.integers(0, len(lines))), text)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


@settings(max_examples=500)  # each flaw is one of many, and examples are cheap
@given(body=_regular_body(), precision=st.sampled_from(["", "s", "u"]))
def test_regular_bodies_parse_as_their_lines(body: str, precision: str) -> None:
    """Regular bodies are parsed column by column; the result is the lines' own, flaws included."""
    parsed = lp.parse(body, precision)
    columns = lp.parse_columns(body, precision)
    assert (columns.values, list(columns.times), columns.lines) == _columns_of(parsed)
    assert columns.rejected == parsed.rejected


def test_regular_bodies_take_the_column_path() -> None:
    body = "m,h=1 a=1.5,b=2i 1000\nn a=-3 1000\nm,h=1 a=2,b=-4i 2000\n"
    columns = lp._parse_uniform(body, 1)
    assert columns is not None and columns.lines == 3
    assert columns.values == {"m,h=1 a": {1: 1.5, 2: 2.0}, "m,h=1 b": {1: 2.0, 2: -4.0}, "n a": {1: -3.0}}
    assert list(columns.times) == [1, 2]
    for irregular in (
        "m a=1 1\nm a=2 1",
        "m a=1 1\nm b=1 2",
        "m a=1 1\nm a=t 2",
        "m a=1,a=2 1",
        "m a=1 1\n\n",
    ):
        assert lp._parse_uniform(irregular, 1) is None


def test_one_series_spelt_with_tags_in_two_orders_keeps_the_last_line() -> None:
    body = "m,z=2,h=1 a=0 6\nm,h=1,z=2 a=1 5\nm,z=2,h=1 a=2 5\n"
    assert lp.parse_columns(body, "u").values == {"m,h=1,z=2 a": {6: 0.0, 5: 2.0}}


@pytest.mark.parametrize(
    "flawed",
    [
        "m a=000000000000000000001i 3000",  # 21 digits
        "m a=12 3000",  # a float among integers
        "m a=9223372036854775808i 3000",
        "m a=1i,b=2i 3000",
        "m a=1=b,2 3000",
        "m a=1i 99999999999999999999",
        "m a=1i 000000000000000000001",
        "m a=1i 1000",  # the same time again
    ],
)
def test_regular_bodies_with_one_flaw_parse_as_their_lines(flawed: str) -> None:
    body = f"m a=1i 1000\n{flawed}\nm a=-2i 2000\n"
    assert lp._parse_uniform("m a=1i 1000\nm a=-2i 2000\n", 1) is not None
    parsed = lp.parse(body)
    columns = lp.parse_columns(body)
    assert (columns.values, list(columns.times), columns.lines) == _columns_of(parsed)
    assert columns.rejected == parsed.rejected


@given(
    before=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters='\n\r"\\'), max_size=10),
    control=st.sampled_from([chr(c) for c in range(32) if chr(c) not in "\t\n\r"] + ["\ufffe", "\uffff"]),
)
def test_string_values_with_control_characters_are_rejected_by_line(before: str, control: str) -> None:
    """Text no XML answer could carry is refused with the line named, never stored."""
    parsed = lp.parse(f'm ok=1\nm s="{before}{control}" 5\nm ok=2')
    assert [r.number for r in parsed.rejected] == [2]
    assert "control characters" in parsed.rejected[0].reason
    assert [p.fields for p in parsed.points] == [(("ok", 1.0),), (("ok", 2.0),)]


# -- InfluxDB 1.x's verdicts (each checked against a real InfluxDB 1.6, see test_influx_differential) --


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("m  v=1   5", lp.LinePoint("m", (), (("v", 1.0),), 0)),
        ("m v=1 5  ", lp.LinePoint("m", (), (("v", 1.0),), 0)),
        ("\tm v=1 5000", lp.LinePoint("m", (), (("v", 1.0),), 5)),
        ("m,t=a\\\\\\,b v=1 5", lp.LinePoint("m", (("t", "a\\\\,b"),), (("v", 1.0),), 0)),
        ('m v="a\nb" 5', lp.LinePoint("m", (), (("v", "a\nb"),), 0)),
        ("m v=09223372036854775807i 5", lp.LinePoint("m", (), (("v", float(2**63 - 1)),), 0)),
        ("m v=00000000000000000000001i 5", lp.LinePoint("m", (), (("v", 1.0),), 0)),
        ("m v=1 -9223372036854775806", lp.LinePoint("m", (), (("v", 1.0),), -9223372036854776)),
        ("m v=1 9223372036854775806", lp.LinePoint("m", (), (("v", 1.0),), 9223372036854775)),
        ("m v=1,v=2 5", lp.LinePoint("m", (), (("v", 2.0),), 0)),
        ("m v=.5,w=5.,x=1E+5 5", lp.LinePoint("m", (), (("v", 0.5), ("w", 5.0), ("x", 1e5)), 0)),
        ('m v="a\\b\\"c\\\\" 5', lp.LinePoint("m", (), (("v", 'a\\b"c\\'),), 0)),
        ('m,t=x\\"y v=1 5', lp.LinePoint("m", (("t", 'x\\"y'),), (("v", 1.0),), 0)),
    ],
)
def test_lines_influxdb_takes(line: str, expected: lp.LinePoint) -> None:
    assert lp.parse(line).points == [expected]


@pytest.mark.parametrize(
    "line",
    [
        "m,t=a\\\\,x=y v=1 5",  # the backslash before the comma escapes it: "=" in a tag value
        "m,t=a\\\\ v=1 5",
        'm v="test"" 5',
        "m v=1 9223372036854775807",
        "m v=1 -9223372036854775807",
        "m v=09223372036854775808i 5",
        "m v=+1 5",
        "m v=1\t5",
        "m v=1 5 6",
        "m time=1 5",
        "m,time=a v=1 5",
        "m,t=a,t=b v=1 5",
        "m v=1,",
    ],
)
def test_lines_influxdb_refuses(line: str) -> None:
    parsed = lp.parse(line)
    assert parsed.points == [] and len(parsed.rejected) == 1


def test_a_field_called_time_is_dropped_as_influxdb_drops_it() -> None:
    """InfluxDB 1.6 stores ``m a=1,time=2`` as ``a`` alone; ``time=abc`` still fails to parse."""
    parsed = lp.parse("m a=1,time=2i 5\nm time=abc,a=1 5\nm2 time=2 5")
    assert [p.fields for p in parsed.points] == [(("a", 1.0),)]
    assert [(r.number, r.reason) for r in parsed.rejected] == [
        (2, "invalid boolean"),
        (3, 'invalid field name: input field "time" on measurement "m2" is invalid'),
    ]
    assert lp.parse_columns("m a=1,time=2i 5").values == {"m a": {0: 1.0}}


def test_a_field_with_two_types_refuses_the_request() -> None:
    with pytest.raises(lp.FieldTypeConflict):
        lp.parse_columns("ok v=1\nm v=1,v=2i 5\n")


def test_hundreds_of_tags_make_one_series() -> None:
    tags = "".join(f",k{i}=v{i}" for i in range(300))
    (point,) = lp.parse(f"m{tags} v=1 5").points
    assert len(point.tags) == 300 and len(point.field_name("v")) > 2000
