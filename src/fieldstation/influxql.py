r"""A parser for the subset of InfluxQL that the ``influxdb`` client and Grafana's query builder send.

Pure: no Flask, no database. :func:`parse` turns a query string (several
statements separated by ``;``) into statement objects with absolute times
(µs, given ``now``), or raises :class:`InfluxQLError` with InfluxDB's wording
(``error parsing query: …``). Supported (docs/query.md lists it):

* ``SELECT <field>|<tag>|*|mean|min|max|sum|count|first|last(<field>) [AS alias], …
  FROM [<db>.][<rp>.]<measurement>|/<regex>/ [WHERE …] [GROUP BY time(<d>)[, <tag>…|*]]
  [fill(none|null|previous|<number>)] [ORDER BY time [ASC|DESC]] [LIMIT n] [OFFSET n]
  [SLIMIT n] [SOFFSET n] [tz('<zone>')]``
* ``WHERE``: ``time <op> <time>`` (``now() - 6h``, ``'2020-01-01T00:00:00Z'``,
  ``1577836800000ms``, bare integers are ns) ANDed at the top, and tag conditions
  ``<tag> = | != '<value>'``, ``<tag> =~ | !~ /<regex>/`` joined by ``AND``/``OR`` with
  parentheses (at most :data:`MAX_NESTING` deep; :mod:`fieldstation.tagmatch` holds the tree).
  Time inside an ``OR`` is refused.
* Regular expressions are RE2's, as InfluxDB's (``\/`` is a slash; :mod:`fieldstation.influxregex`
  reads them and refuses what RE2 refuses, in Go's words). A ``/`` opens one only after ``=~``,
  ``!~``, ``FROM`` or a dot, where InfluxDB's parser asks for one.
* ``SHOW DATABASES``; ``SHOW SERIES | MEASUREMENTS [WITH MEASUREMENT =|=~ …] | FIELD KEYS |
  TAG KEYS | TAG VALUES WITH KEY =|!=|=~|!~|IN … | RETENTION POLICIES`` (``ON <db>``,
  ``FROM <m>|/<regex>/``, ``WHERE`` tag conditions, ``LIMIT n``, ``OFFSET n``);
  ``CREATE DATABASE <name>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fieldstation import tagmatch
from fieldstation.errors import BadRequest
from fieldstation.influxregex import RegexError
from fieldstation.points import get_zone, parse_time
from fieldstation.tagmatch import AllOf, AnyOf, Condition, TagFilter
from fieldstation.timeunits import DAY, HOUR, MAX_TS_US, MIN_TS_US, MINUTE, SECOND

#: Longest query text accepted.
MAX_QUERY = 16_384
#: Deepest parentheses in a WHERE clause (Grafana nests two or three).
MAX_NESTING = 32
FUNCTIONS = ("mean", "min", "max", "sum", "count", "first", "last")
#: InfluxQL duration units in µs (ns rounds down to µs).
DURATION_US = {"ns": 0.001, "u": 1, "µ": 1, "us": 1, "ms": 1000, "s": SECOND, "m": MINUTE}
DURATION_US |= {"h": HOUR, "d": DAY, "w": 7 * DAY}


class InfluxQLError(BadRequest):
    """A query outside the subset or malformed; the message reads like InfluxDB's."""


@dataclass(frozen=True, slots=True)
class SelectColumn:
    """One SELECT expression: a field (``function`` None) or ``function(field)``."""

    field: str
    function: str | None = None
    alias: str | None = None

    @property
    def name(self) -> str:
        """The output column name (InfluxDB uses the function name for calls)."""
        return self.alias or self.function or self.field


@dataclass(slots=True)
class Select:
    columns: list[SelectColumn]
    measurement: str
    database: str | None = None
    retention: str | None = None
    start: int | None = None  # inclusive, µs
    end: int | None = None  # exclusive, µs
    tags: list[Condition] = field(default_factory=list)  # all must hold
    every: int | None = None
    group_tags: list[str] = field(default_factory=list)
    fill: str | float = "null"
    descending: bool = False
    limit: int | None = None
    tz: str | None = None
    measurement_regex: str | None = None  # FROM /…/ (then ``measurement`` is "")
    offset: int = 0
    slimit: int | None = None
    soffset: int = 0


@dataclass(frozen=True, slots=True)
class Show:
    what: str  # databases, measurements, field keys, tag keys, tag values, retention policies
    database: str | None = None
    measurement: str | None = None
    keys: tuple[str, ...] = ()
    limit: int | None = None
    measurement_regex: str | None = None  # FROM /…/ or WITH MEASUREMENT =~ /…/
    key_op: str = (
        "="  # WITH KEY: "=" (also IN: any of ``keys``), "!=", "=~" or "!~" (``keys[0]`` the pattern)
    )
    tags: tuple[Condition, ...] = ()  # WHERE: all must hold
    offset: int = 0


@dataclass(frozen=True, slots=True)
class _TimeBound:
    """``time <op> <µs>`` while a WHERE clause is read; only an AND of them narrows the window."""

    op: str
    ts: int


@dataclass(frozen=True, slots=True)
class CreateDatabase:
    name: str


Statement = Select | Show | CreateDatabase

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<qident>"(?:[^"\\]|\\.)*")
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<duration>\d+(?:ns|us|u|µ|ms|s|m|h|d|w)(?![A-Za-z0-9_]))
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=~|!~|[=<>+\-*(),;.])
    """,
    re.VERBOSE | re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident, qident, string, duration, number, op, regex, eof
    text: str
    pos: int

    @property
    def value(self) -> str:
        """Identifier or string contents with quotes and escapes removed."""
        if self.kind in ("qident", "string"):
            return re.sub(r"\\(.)", r"\1", self.text[1:-1])
        if self.kind == "regex":  # InfluxDB unescapes only the slash; RE2 reads the rest
            return re.sub(
                r"\\(.)", lambda m: "/" if m.group(1) == "/" else m.group(), self.text[1:-1], flags=re.S
            )
        return self.text

    def is_kw(self, *words: str) -> bool:
        return self.kind == "ident" and self.text.upper() in words


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens; anything unrecognised is an error naming its position."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "/" and _regex_may_follow(tokens):
            end = _REGEX_RE.match(text, pos)
            if end is None:
                raise InfluxQLError(f"error parsing query: bad regex:  at line 1, char {pos}")  # sic
            tokens.append(Token("regex", end.group(), pos))
            pos = end.end()
            continue
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise InfluxQLError(f"error parsing query: found {text[pos : pos + 10]!r}, at char {pos + 1}")
        kind = match.lastgroup or "ws"
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


_REGEX_RE = re.compile(r"/(?:[^/\\]|\\.)*/", re.S)


def _regex_may_follow(tokens: list[Token]) -> bool:
    """A ``/`` opens a regular expression after ``=~``, ``!~``, ``FROM`` and a dot (``db./re/``), as
    InfluxDB's parser asks its scanner for one there (elsewhere it divides)."""
    if not tokens:
        return False
    last = tokens[-1]
    return (last.kind == "op" and last.text in ("=~", "!~", ".")) or last.is_kw("FROM")


def parse(text: str, now: int) -> list[Statement]:
    """All statements of a query string (separated by ``;``), times made absolute against ``now``.

    :raise InfluxQLError: empty, too long, malformed or outside the supported subset.
    """
    if len(text) > MAX_QUERY:
        raise InfluxQLError(f"error parsing query: query longer than {MAX_QUERY} characters")
    parser = _Parser(tokenize(text), now)
    statements = parser.statements()
    if not statements:
        raise InfluxQLError("error parsing query: empty query")
    return statements


class _Parser:
    def __init__(self, tokens: list[Token], now: int) -> None:
        self.tokens = tokens
        self.i = 0
        self.now = now
        self.depth = 0  # open parentheses in WHERE

    # -- token helpers --

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "eof":
            self.i += 1
        return token

    def fail(self, expected: str) -> InfluxQLError:
        found = self.tok.text or "EOF"
        return InfluxQLError(
            f"error parsing query: found {found}, expected {expected} at char {self.tok.pos + 1}"
        )

    def accept_kw(self, *words: str) -> bool:
        if self.tok.is_kw(*words):
            self.i += 1
            return True
        return False

    def expect_kw(self, *words: str) -> None:
        if not self.accept_kw(*words):
            raise self.fail(" ".join(words))

    def accept_op(self, op: str) -> bool:
        if self.tok.kind == "op" and self.tok.text == op:
            self.i += 1
            return True
        return False

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise self.fail(op)

    def ident(self, what: str = "identifier") -> str:
        if self.tok.kind in ("ident", "qident"):
            return self.next().value
        raise self.fail(what)

    def integer(self, what: str) -> int:
        if self.tok.kind == "number" and self.tok.text.isdigit() and len(self.tok.text) <= 12:
            return int(self.next().text)
        raise self.fail(what)

    # -- statements --

    def statements(self) -> list[Statement]:
        result: list[Statement] = []
        while self.tok.kind != "eof":
            if self.accept_op(";"):
                continue
            result.append(self.statement())
            if self.tok.kind != "eof" and not self.accept_op(";"):
                raise self.fail(";")
        return result

    def statement(self) -> Statement:
        if self.accept_kw("SELECT"):
            return self.select()
        if self.accept_kw("SHOW"):
            return self.show()
        if self.accept_kw("CREATE"):
            self.expect_kw("DATABASE")
            return CreateDatabase(self.ident("database name"))
        raise self.fail("SELECT, SHOW, CREATE")

    def select(self) -> Select:
        columns = [self.column()]
        while self.accept_op(","):
            columns.append(self.column())
        self.expect_kw("FROM")
        database, retention, measurement, pattern = self.source()
        stmt = Select(columns, measurement, database, retention, measurement_regex=pattern)
        if any(c.field == "*" and not c.function for c in columns) and any(c.function for c in columns):
            raise InfluxQLError("error parsing query: mixing * with functions is not supported")
        if self.accept_kw("WHERE"):
            self.condition(stmt)
        if self.accept_kw("GROUP"):
            self.expect_kw("BY")
            self.group_by(stmt)
        if self.accept_kw("FILL"):
            stmt.fill = self.fill()
        if self.accept_kw("ORDER"):
            self.expect_kw("BY")
            if self.ident("time").lower() != "time":
                raise InfluxQLError("error parsing query: only ORDER BY time is supported")
            if self.accept_kw("DESC"):
                stmt.descending = True
            else:
                self.accept_kw("ASC")
        self.limits(stmt)
        if self.accept_kw("TZ"):
            stmt.tz = self.zone()
        has_calls = any(c.function for c in columns)
        if has_calls and not all(c.function for c in columns):
            raise InfluxQLError(
                "error parsing query: mixing aggregate and non-aggregate queries is not supported"
            )
        if stmt.every is not None and not has_calls:
            raise InfluxQLError("error parsing query: GROUP BY requires at least one aggregate function")
        return stmt

    def column(self) -> SelectColumn:
        if self.accept_op("*"):
            return SelectColumn("*")
        name = self.ident("field or function")
        if self.accept_op("("):
            function = name.lower()
            if function not in FUNCTIONS:
                raise InfluxQLError(f"error parsing query: undefined function {name}()")
            if self.accept_op("*"):
                raise InfluxQLError(f"error parsing query: {function}(*) is not supported")
            field_name = self.ident("field key")
            self.expect_op(")")
            return SelectColumn(field_name, function, self.alias())
        return SelectColumn(name, None, self.alias())

    def alias(self) -> str | None:
        return self.ident("alias") if self.accept_kw("AS") else None

    def source(self) -> tuple[str | None, str | None, str, str | None]:
        """``[db.][rp.]measurement`` or ``[db.][rp.]/regex/``: database, retention, name, pattern."""
        parts: list[str] = []
        pattern = None
        while True:
            if self.tok.kind == "regex":
                pattern = self.regex()
                parts.append("")
                break
            parts.append(self.ident("measurement") if self.tok.kind != "op" or not parts else "")
            if not self.accept_op("."):
                break
        if len(parts) > 3:
            raise self.fail("measurement")
        while len(parts) < 3:
            parts.insert(0, "")
        return parts[0] or None, parts[1] or None, parts[2], pattern

    def regex(self) -> str:
        """A ``/regex/`` token's pattern, checked by RE2's grammar now (InfluxDB refuses it as it parses)."""
        if self.tok.kind != "regex":
            raise self.fail("regex")
        token = self.next()
        try:
            tagmatch.regex(token.value)
        except RegexError as exc:
            raise InfluxQLError(f"error parsing query: {exc.message} at line 1, char {token.pos}") from None
        return token.value

    def limits(self, stmt: Select) -> None:
        """``LIMIT n OFFSET n SLIMIT n SOFFSET n``, in InfluxQL's order, each optional."""
        if self.accept_kw("LIMIT"):
            stmt.limit = self.integer("LIMIT count")
        if self.accept_kw("OFFSET"):
            stmt.offset = self.integer("OFFSET count")
        if self.accept_kw("SLIMIT"):
            stmt.slimit = self.integer("SLIMIT count")
        if self.accept_kw("SOFFSET"):
            stmt.soffset = self.integer("SOFFSET count")

    def zone(self) -> str:
        """``tz('Zone')``: the zone's name; InfluxDB refuses an unknown zone as it parses."""
        self.expect_op("(")
        if self.tok.kind != "string":
            raise self.fail("time zone string")
        name = self.next().value
        try:
            get_zone(name)
        except BadRequest:
            raise InfluxQLError(f"error parsing query: unable to find time zone {name[:64]}") from None
        self.expect_op(")")
        return name

    # -- WHERE --

    def condition(self, stmt: Select) -> None:
        """WHERE: the time bounds ANDed at the top narrow the window; the rest are tag conditions."""
        for item in _top_level(self.disjunction()):
            if isinstance(item, _TimeBound):
                self.time_term(stmt, item)
            else:
                stmt.tags.append(item)

    def tag_condition(self) -> tuple[Condition, ...]:
        """A WHERE clause of tag conditions only (SHOW statements)."""
        items = _top_level(self.disjunction())
        if any(isinstance(item, _TimeBound) for item in items):
            raise InfluxQLError("error parsing query: time conditions in SHOW are not supported")
        return tuple(items)  # type: ignore[arg-type]

    def disjunction(self) -> Condition | _TimeBound:
        items = [self.conjunction()]
        while self.accept_kw("OR"):
            items.append(self.conjunction())
        if len(items) == 1:
            return items[0]
        if any(_has_time(item) for item in items):
            raise InfluxQLError("error parsing query: time conditions combined with OR are not supported")
        return AnyOf(tuple(items))  # type: ignore[arg-type]

    def conjunction(self) -> Condition | _TimeBound:
        items = [self.term()]
        while self.accept_kw("AND"):
            items.append(self.term())
        return items[0] if len(items) == 1 else AllOf(tuple(items))  # type: ignore[arg-type]

    def term(self) -> Condition | _TimeBound:
        if self.accept_op("("):
            self.depth += 1
            if self.depth > MAX_NESTING:  # each level is a Python frame: bounded before the stack is
                raise InfluxQLError(f"error parsing query: parentheses nested deeper than {MAX_NESTING}")
            inner = self.disjunction()
            self.expect_op(")")
            self.depth -= 1
            return inner
        left = self.ident("time or tag key")
        op = self.tok.text if self.tok.kind == "op" else ""
        if op not in ("=", "!=", "<>", "<", "<=", ">", ">=", "=~", "!~"):
            raise self.fail("comparison operator")
        self.next()
        if left.lower() == "time":
            if op in ("=~", "!~"):
                raise InfluxQLError("error parsing query: time compares with =, <, <=, >, >=")
            return _TimeBound(op, self.time_expr())
        if op in ("=~", "!~"):
            return TagFilter(left, op, self.regex())
        if op not in ("=", "!=", "<>"):
            raise InfluxQLError("error parsing query: tags compare with =, !=, =~ or !~ only")
        if self.tok.kind != "string":
            raise self.fail("string")
        return TagFilter(left, "=" if op == "=" else "!=", self.next().value)

    def time_term(self, stmt: Select, bound: _TimeBound) -> None:
        op, ts = bound.op, bound.ts
        lo, hi = {
            ">": (ts + 1, None),
            ">=": (ts, None),
            "<": (None, ts),
            "<=": (None, ts + 1),
            "=": (ts, ts + 1),
        }.get(op, (None, None))
        if op in ("!=", "<>"):
            raise InfluxQLError("error parsing query: time != is not supported")
        if lo is not None:
            stmt.start = lo if stmt.start is None else max(stmt.start, lo)
        if hi is not None:
            stmt.end = hi if stmt.end is None else min(stmt.end, hi)

    def time_expr(self) -> int:
        value = self.time_atom()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            sign = 1 if self.next().text == "+" else -1
            if self.tok.kind != "duration":
                raise self.fail("duration")
            value += sign * self.duration()
        if not MIN_TS_US <= value <= MAX_TS_US:
            raise InfluxQLError("error parsing query: time out of range")
        return value

    def time_atom(self) -> int:
        token = self.tok
        if token.is_kw("NOW"):
            self.next()
            self.expect_op("(")
            self.expect_op(")")
            return self.now
        if token.kind == "string":
            self.next()
            try:
                return parse_time(token.value)
            except BadRequest:
                raise InfluxQLError(f"error parsing query: invalid time {token.value!r}") from None
        if token.kind == "duration":  # an epoch with a unit, such as 1577836800000ms
            return self.duration()
        if token.kind == "number" and token.text.isdigit() and len(token.text) <= 19:
            self.next()
            return int(token.text) // 1000  # bare integers are nanoseconds
        raise self.fail("time value")

    def duration(self) -> int:
        text = self.next().text
        match = re.fullmatch(r"(\d+)(ns|us|u|µ|ms|s|m|h|d|w)", text)
        if match is None or len(match.group(1)) > 19:
            raise InfluxQLError(f"error parsing query: invalid duration {text}")
        return int(int(match.group(1)) * DURATION_US[match.group(2)])

    # -- GROUP BY, fill --

    def group_by(self, stmt: Select) -> None:
        while True:
            if self.accept_op("*"):
                stmt.group_tags = ["*"]
            elif self.tok.is_kw("TIME") and self.tokens[self.i + 1].text == "(":
                self.next()
                self.expect_op("(")
                if self.tok.kind != "duration":
                    raise self.fail("duration")
                every = self.duration()
                if every <= 0:
                    raise InfluxQLError("error parsing query: GROUP BY time() needs a positive duration")
                if self.accept_op(","):
                    raise InfluxQLError("error parsing query: GROUP BY time() offsets are not supported")
                self.expect_op(")")
                stmt.every = every
            else:
                stmt.group_tags.append(self.ident("tag key"))
            if not self.accept_op(","):
                return

    def fill(self) -> str | float:
        self.expect_op("(")
        if self.tok.is_kw("NONE", "NULL", "PREVIOUS"):
            value: str | float = self.next().text.lower()
        elif self.tok.is_kw("LINEAR"):
            raise InfluxQLError("error parsing query: fill(linear) is not supported")
        else:
            negative = self.accept_op("-")
            if self.tok.kind != "number":
                raise self.fail("fill option or number")
            value = float(self.next().text) * (-1 if negative else 1)
        self.expect_op(")")
        return value

    # -- SHOW --

    def show(self) -> Show:
        if self.accept_kw("DATABASES"):
            return Show("databases")
        if self.accept_kw("SERIES"):
            return self.show_tail("series")
        if self.accept_kw("MEASUREMENTS"):
            return self.show_tail("measurements")
        if self.accept_kw("FIELD"):
            self.expect_kw("KEYS")
            return self.show_tail("field keys")
        if self.accept_kw("RETENTION"):
            self.expect_kw("POLICIES")
            return self.show_tail("retention policies")
        if self.accept_kw("TAG"):
            if self.accept_kw("KEYS"):
                return self.show_tail("tag keys")
            self.expect_kw("VALUES")
            return self.show_tail("tag values")
        raise self.fail(
            "DATABASES, SERIES, MEASUREMENTS, FIELD KEYS, TAG KEYS, TAG VALUES, RETENTION POLICIES"
        )

    def show_tail(self, what: str) -> Show:
        database = measurement = pattern = None
        keys: tuple[str, ...] = ()
        key_op = "="
        tags: tuple[Condition, ...] = ()
        limit, offset = None, 0
        if self.accept_kw("ON"):
            database = self.ident("database name")
        if self.accept_kw("FROM"):
            _, _, measurement, pattern = self.source()
        if what == "tag values":
            self.expect_kw("WITH")
            self.expect_kw("KEY")
            key_op, keys = self.with_key()
        elif what == "measurements" and self.accept_kw("WITH"):
            self.expect_kw("MEASUREMENT")
            if self.accept_op("=~"):
                pattern = self.regex()
            else:
                self.expect_op("=")
                measurement = self.ident("measurement")
        if self.accept_kw("WHERE"):
            tags = self.tag_condition()
        if self.accept_kw("LIMIT"):
            limit = self.integer("LIMIT count")
        if self.accept_kw("OFFSET"):
            offset = self.integer("OFFSET count")
        return Show(what, database, measurement or None, keys, limit, pattern, key_op, tags, offset)

    def with_key(self) -> tuple[str, tuple[str, ...]]:
        """``WITH KEY = k | != k | =~ /re/ | !~ /re/ | IN (k, …)``: the operator and the keys (or pattern)."""
        for op in ("=~", "!~"):
            if self.accept_op(op):
                return op, (self.regex(),)
        for op in ("=", "!=", "<>"):
            if self.accept_op(op):
                return ("=" if op == "=" else "!="), (self.ident("tag key"),)
        self.expect_kw("IN")
        self.expect_op("(")
        names = [self.ident("tag key")]
        while self.accept_op(","):
            names.append(self.ident("tag key"))
        self.expect_op(")")
        return "=", tuple(names)


def _has_time(item: Condition | _TimeBound) -> bool:
    if isinstance(item, _TimeBound):
        return True
    return isinstance(item, AllOf | AnyOf) and any(_has_time(i) for i in item.items)


def _top_level(item: Condition | _TimeBound) -> list[Condition | _TimeBound]:
    """The conditions ANDed at the top of a WHERE clause (nested ANDs flattened)."""
    if isinstance(item, AllOf):
        return [flat for inner in item.items for flat in _top_level(inner)]
    return [item]
