r"""A parser for the subset of InfluxQL that the ``influxdb`` client and Grafana's query builder send.

Pure: no Flask, no database. :func:`parse` turns a query string (several
statements separated by ``;``) into statement objects with absolute times
(µs, given ``now``), or raises :class:`InfluxQLError` with InfluxDB's wording
(``error parsing query: …``). Supported (docs/query.md lists it):

* ``SELECT <expr> [AS alias], … FROM [<db>.][<rp>.]<measurement>|/<regex>/ [WHERE …]
  [GROUP BY time(<d>)[, <tag>…|*]] [fill(none|null|previous|linear|<number>)]
  [ORDER BY time [ASC|DESC]] [LIMIT n] [OFFSET n] [SLIMIT n] [SOFFSET n] [tz('<zone>')]`` where an
  expression is a field or tag, ``*``, a number, a call, or ``+ - * /`` of them with unary minus and
  parentheses (:class:`BinaryOp`).
  Calls: the aggregates and selectors ``mean min max sum count first last`` (:data:`FUNCTIONS`,
  from the rollups), ``median mode spread stddev percentile(f, N) distinct count(distinct(f))
  top(f, N) bottom(f, N) integral(f[, unit])`` (:data:`EXACT`), and the transformations
  ``derivative non_negative_derivative difference non_negative_difference cumulative_sum
  moving_average(…, N)`` of a field or, with GROUP BY time(), of an aggregate (:data:`TRANSFORMS`).
  What InfluxDB refuses only when it compiles a statement (argument counts and kinds, unknown
  functions, calls beside raw fields) is kept in :attr:`Select.invalid`, to be that statement's
  error rather than the whole query's 400; :mod:`fieldstation.influx_functions` computes them.
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
from collections.abc import Callable
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
#: Most arithmetic operators in one SELECT list.
MAX_OPERATORS = 200
FUNCTIONS = ("mean", "min", "max", "sum", "count", "first", "last")
#: Aggregates and selectors beyond FUNCTIONS: one value (top/bottom: several) per bucket from raw values.
EXACT = ("median", "mode", "spread", "stddev", "percentile", "distinct", "top", "bottom", "integral")
#: Transformations: a series of points from a field (no GROUP BY time) or from an aggregate per bucket.
TRANSFORMS = (
    "derivative",
    "non_negative_derivative",
    "difference",
    "non_negative_difference",
    "cumulative_sum",
    "moving_average",
)
#: Selectors: the value of one point, so alone in a query without GROUP BY time they answer its time.
SELECTORS = ("first", "last", "min", "max", "percentile", "top", "bottom")
#: InfluxQL duration units in µs (ns rounds down to µs).
DURATION_US = {"ns": 0.001, "u": 1, "µ": 1, "us": 1, "ms": 1000, "s": SECOND, "m": MINUTE}
DURATION_US |= {"h": HOUR, "d": DAY, "w": 7 * DAY}


class InfluxQLError(BadRequest):
    """A query outside the subset or malformed; the message reads like InfluxDB's."""


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field key inside an expression."""

    name: str


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    integer: bool = False


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration literal argument (``derivative(x, 1m)``), in µs."""

    us: int


@dataclass(frozen=True, slots=True)
class Call:
    """``name(args…)``: an aggregate, a selector or a transformation of a field or of an aggregate."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class BinaryOp:
    """Arithmetic between expressions: ``+ - * /`` (unary minus is ``-1 * x``)."""

    op: str
    left: Expr
    right: Expr


Expr = FieldRef | Number | Duration | Call | BinaryOp


def expr_name(expr: Expr) -> str:
    """InfluxDB's column name of an expression: a call's name, a field's key, operands joined by ``_``."""
    if isinstance(expr, FieldRef):
        return expr.name
    if isinstance(expr, Call):
        return expr.name
    if isinstance(expr, BinaryOp):
        return "_".join(n for n in (expr_name(expr.left), expr_name(expr.right)) if n)
    return ""


@dataclass(frozen=True, slots=True)
class SelectColumn:
    """One SELECT expression: a field (``function`` None), ``function(field)``, or any other
    expression in ``expr`` (calls with arguments, nested calls, arithmetic); ``field`` and
    ``function`` then name its first field and outermost call."""

    field: str
    function: str | None = None
    alias: str | None = None
    expr: Expr | None = None

    @property
    def name(self) -> str:
        """The output column name (InfluxDB uses the function name for calls)."""
        if self.alias:
            return self.alias
        if self.expr is not None:
            return expr_name(self.expr)
        return self.function or self.field


def column_names(columns: list[SelectColumn]) -> list[str]:
    """InfluxDB's output names of a SELECT list, de-duplicated: mean, mean_1, …"""
    seen: dict[str, int] = {}
    names = []
    for column in columns:
        count = seen.get(column.name, 0)
        names.append(column.name if count == 0 else f"{column.name}_{count}")
        seen[column.name] = count + 1
    return names


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
    #: ``GROUP BY time(d, offset)``: where buckets start past the epoch's edges, µs, ``|origin| < every``.
    origin: int = 0
    group_tags: list[str] = field(default_factory=list)
    fill: str | float = "null"
    descending: bool = False
    limit: int | None = None
    tz: str | None = None
    measurement_regex: str | None = None  # FROM /…/ (then ``measurement`` is "")
    offset: int = 0
    slimit: int | None = None
    soffset: int = 0
    #: Why InfluxDB would refuse it when it runs (a statement error in its result, not a 400).
    invalid: str | None = None
    #: ``FROM (SELECT …)``: the inner statement, whose answer this one reads (then ``measurement`` is "").
    subquery: Select | None = None
    #: ``WHERE "field" <op> <number>`` ANDed at the top: only over a subquery, on its answer's columns.
    field_filters: list[FieldFilter] = field(default_factory=list)

    @property
    def has_calls(self) -> bool:
        """Whether a column calls a function: the statement aggregates (or selects, or transforms)
        rather than reading raw values."""
        return any(c.function is not None or (c.expr is not None and calls(c.expr)) for c in self.columns)


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
class FieldFilter:
    """``"field" <op> <number>`` in the WHERE of a statement over a subquery: a row passes when its
    column holds a number that compares so (null and text never do, as in InfluxDB)."""

    key: str
    op: str  # = != < <= > >=
    value: float

    def holds(self, actual: object) -> bool:
        if not isinstance(actual, int | float) or isinstance(actual, bool):
            return False
        return bool(_COMPARE[self.op](float(actual), self.value))


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True, slots=True)
class _TimeBound:
    """``time <op> <µs>`` while a WHERE clause is read; only an AND of them narrows the window."""

    op: str
    ts: int


#: One item of a WHERE clause while it is read.
_Item = Condition | _TimeBound | FieldFilter


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
  | (?P<regex>/(?:[^/\\]|\\.)*/)
  | (?P<slash>/)
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
            literal = _REGEX_RE.match(text, pos)
            if literal is None:
                raise InfluxQLError(f"error parsing query: bad regex:  at line 1, char {pos}")  # sic
            tokens.append(Token("regex", literal.group(), pos))
            pos = literal.end()
            continue
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise InfluxQLError(f"error parsing query: found {text[pos : pos + 10]!r}, at char {pos + 1}")
        kind = match.lastgroup or "ws"
        end = match.end()
        if kind in ("regex", "slash"):
            kind, end = ("op", pos + 1) if _divides(tokens) else (kind, end)
            if kind == "slash":
                raise InfluxQLError(f"error parsing query: found /, at char {pos + 1}")
        if kind != "ws":
            tokens.append(Token(kind, text[pos:end], pos))
        pos = end
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


def _is_call(column: SelectColumn) -> bool:
    return column.function is not None or (column.expr is not None and bool(calls(column.expr)))


def validate(stmt: Select) -> None:
    """What InfluxDB refuses of a parsed SELECT when it compiles it (a statement error, not a 400):
    unknown functions, wrong arguments, calls beside raw fields, columns without a field.

    :raise InfluxQLError: the first such error, with InfluxDB's message.
    """
    for column in stmt.columns:
        if column.expr is not None:
            for call in _all_calls(column.expr):
                if call.name not in FUNCTIONS + EXACT + TRANSFORMS:
                    raise InfluxQLError(f"error parsing query: undefined function {call.name}()")
                check_call(call)
            if not expr_fields(column.expr):
                raise InfluxQLError("error parsing query: field must contain at least one variable")
    has_calls = any(_is_call(c) for c in stmt.columns)
    if has_calls and not all(_is_call(c) for c in stmt.columns):
        raise InfluxQLError(
            "error parsing query: mixing aggregate and non-aggregate queries is not supported"
        )
    if has_calls:
        check_calls(stmt)


def _all_calls(expr: Expr) -> list[Call]:
    """Every call in an expression, outermost first."""
    if isinstance(expr, Call):
        return [expr, *(c for arg in expr.args for c in _all_calls(arg))]
    if isinstance(expr, BinaryOp):
        return _all_calls(expr.left) + _all_calls(expr.right)
    return []


def check_calls(stmt: Select) -> None:
    """What InfluxDB refuses of a statement's calls as a whole: top/bottom and distinct only alone,
    transformations of an aggregate only with GROUP BY time, of a field only without.

    :raise InfluxQLError: with InfluxDB's message.
    """
    found = [
        call for c in stmt.columns for call in calls(c.expr or Call(c.function or "", (FieldRef(c.field),)))
    ]
    for call in found:
        if call.name in ("top", "bottom", "distinct") and len(found) > 1:
            kind = "selector" if call.name != "distinct" else "aggregate"
            tail = "" if call.name != "distinct" else " or fields"
            raise InfluxQLError(
                f"error parsing query: {kind} function {call.name}() cannot be combined"
                f" with other functions{tail}"
            )
        if call.name in TRANSFORMS:
            inner = call.args[0]
            if isinstance(inner, Call) and stmt.every is None:
                raise InfluxQLError(
                    f"error parsing query: {call.name} aggregate requires a GROUP BY interval"
                )
            if isinstance(inner, FieldRef) and stmt.every is not None:
                raise InfluxQLError(
                    f"error parsing query: aggregate function required inside the call to {call.name}"
                )


def expr_fields(expr: Expr) -> list[str]:
    """Field keys an expression reads, in order of appearance (inside calls too)."""
    if isinstance(expr, FieldRef):
        return [expr.name]
    if isinstance(expr, Call):
        return [f for arg in expr.args for f in expr_fields(arg)]
    if isinstance(expr, BinaryOp):
        return expr_fields(expr.left) + expr_fields(expr.right)
    return []


def calls(expr: Expr) -> list[Call]:
    """The outermost calls inside an expression (arithmetic around them looked through)."""
    if isinstance(expr, Call):
        return [expr]
    if isinstance(expr, BinaryOp):
        return calls(expr.left) + calls(expr.right)
    return []


#: Argument counts (least, most) of every function.
_ARITY = {name: (1, 1) for name in FUNCTIONS + EXACT + TRANSFORMS}
_ARITY |= {"percentile": (2, 2), "top": (2, 2), "bottom": (2, 2), "moving_average": (2, 2)}
_ARITY |= {"integral": (1, 2), "derivative": (1, 2), "non_negative_derivative": (1, 2)}


def check_call(call: Call) -> None:
    """A call's arguments as InfluxDB checks them, with its messages.

    :raise InfluxQLError: wrong count or kind of arguments.
    """
    name, args = call.name, call.args
    least, most = _ARITY[name]
    if not least <= len(args) <= most:
        expected = (
            (str(least) if least == most else f"at least {least} but no more than {most}")
            if name not in ("top", "bottom")
            else f"at least {least}"
        )
        raise InfluxQLError(
            f"error parsing query: invalid number of arguments for {name},"
            f" expected {expected}, got {len(args)}"
        )
    first = args[0]
    if name in TRANSFORMS:
        inner_ok = isinstance(first, FieldRef) or (
            isinstance(first, Call)
            and first.name in FUNCTIONS + EXACT
            and first.name not in ("top", "bottom")
        )
        if isinstance(first, Call) and first.name in ("top", "bottom"):
            raise InfluxQLError(
                f"error parsing query: selector function {first.name}() cannot be combined"
                " with other functions"
            )
        if not inner_ok:
            raise InfluxQLError(f"error parsing query: expected field argument in {name}()")
    elif name == "count" and isinstance(first, Call) and first.name == "distinct":
        pass
    elif not isinstance(first, FieldRef):
        raise InfluxQLError(f"error parsing query: expected field argument in {name}()")
    _check_second(name, args[1:])


def _check_second(name: str, rest: tuple[Expr, ...]) -> None:
    if not rest:
        return
    arg = rest[0]
    if name in ("derivative", "non_negative_derivative"):
        if not isinstance(arg, Duration):
            raise InfluxQLError(f"error parsing query: second argument to {name} must be a duration")
        if arg.us <= 0:
            raise InfluxQLError(f"error parsing query: duration argument must be positive, got {arg.us}us")
    elif name == "integral":
        if not isinstance(arg, Duration) or arg.us <= 0:
            raise InfluxQLError("error parsing query: second argument must be a duration")
    elif name == "percentile":
        if not isinstance(arg, Number):
            raise InfluxQLError("error parsing query: expected float argument in percentile()")
    elif name in ("top", "bottom"):
        if not isinstance(arg, Number) or not arg.integer:
            raise InfluxQLError(
                f"error parsing query: expected integer as last argument in {name}(), found {arg}"
            )
        if arg.value < 1:
            raise InfluxQLError(
                f"error parsing query: limit ({int(arg.value)}) in {name} function must be at least 1"
            )
        if arg.value > _MAX_TOP:
            raise InfluxQLError(f"error parsing query: limit in {name} function must be at most {_MAX_TOP}")
    elif name == "moving_average":
        if not isinstance(arg, Number) or not arg.integer:
            raise InfluxQLError("error parsing query: second argument for moving_average must be an integer")
        if arg.value <= 1:
            raise InfluxQLError(
                f"error parsing query: moving_average window must be greater than 1, got {int(arg.value)}"
            )
        if arg.value > _MAX_TOP:
            raise InfluxQLError(f"error parsing query: moving_average window must be at most {_MAX_TOP}")


def _string_offset_problem(text: str) -> str:
    """InfluxDB's error for a string as ``time()``'s offset: one that reads as a time is parsed and then
    refused, one that only starts like a date fails to parse, any other is not an offset at all."""
    if not re.match(r"\d{4}-\d\d-\d\d", text):
        return "time dimension offset must be duration or now()"
    if not re.fullmatch(
        r"\d{4}-\d\d-\d\d( \d\d:\d\d:\d\d(\.\d+)?|T\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d))?", text
    ):
        return "invalid timestamp string"
    quoted = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"invalid time dimension offset: '{quoted}'"


def _now_problem(call: Call) -> str | None:
    if call.name != "now":
        return "time dimension offset function must be now()"
    if call.args:
        return "time dimension offset now() function requires no arguments"
    return None


def _folded_duration(expr: Expr) -> int | None:
    """A constant duration in µs as InfluxDB folds one (``-15m``, ``15m + 1m``, ``15m * 2``, ``30m / 2``),
    or None for anything else (an integer times a duration included, as InfluxDB refuses it)."""
    if isinstance(expr, Duration):
        return expr.us
    if not isinstance(expr, BinaryOp):
        return None
    if expr.op == "*" and expr.left == Number(-1.0, True) and isinstance(expr.right, Duration):
        return -expr.right.us  # unary minus
    left = _folded_duration(expr.left)
    if left is None:
        return None
    if expr.op in "+-":
        right = _folded_duration(expr.right)
        return None if right is None else left + right if expr.op == "+" else left - right
    factor = expr.right
    if not isinstance(factor, Number) or not factor.integer:
        return None
    if expr.op == "*":
        return left * int(factor.value)
    if factor.value == 0:
        return 0  # InfluxDB folds a division by zero to 0
    quotient = abs(left) // int(factor.value)  # Go divides towards zero
    return quotient if left >= 0 else -quotient


#: µs from Go's zero time (0001-01-01T00:00:00Z), from which ``time.Truncate`` counts, to the epoch.
_ZERO_TIME_TO_EPOCH_US = 62_135_596_800 * SECOND

#: Largest ``top``/``bottom`` count and ``moving_average`` window (each is held in memory).
_MAX_TOP = 100_000


def _divides(tokens: list[Token]) -> bool:
    """Whether a ``/`` here is division: it follows an operand (a regex starts one)."""
    if not tokens:
        return False
    last = tokens[-1]
    if last.kind == "ident":
        return not last.is_kw("FROM", "WHERE", "AND", "OR", "SELECT", "BY")
    return last.kind in ("qident", "number", "duration", "string") or last.text == ")"


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
        self.operators = 0  # arithmetic operators in the SELECT list
        self.nested = False  # inside FROM (SELECT …)
        self.fields_ok = False  # in the WHERE of a statement over a subquery: field conditions allowed

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
        self.operators = 0
        columns = [self.column()]
        while self.accept_op(","):
            columns.append(self.column())
        self.expect_kw("FROM")
        if self.accept_op("("):
            stmt = Select(columns, "", subquery=self.subquery())
        else:
            database, retention, measurement, pattern = self.source()
            stmt = Select(columns, measurement, database, retention, measurement_regex=pattern)
        if any(c.field == "*" and not c.function for c in columns) and any(_is_call(c) for c in columns):
            raise InfluxQLError("error parsing query: mixing * with functions is not supported")
        if self.accept_kw("WHERE"):
            self.fields_ok = stmt.subquery is not None
            self.condition(stmt)
            self.fields_ok = False
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
        has_calls = any(_is_call(c) for c in columns)
        try:
            validate(stmt)
        except InfluxQLError as exc:
            stmt.invalid = stmt.invalid or exc.message.removeprefix("error parsing query: ")
        if stmt.every is not None and not has_calls:
            raise InfluxQLError("error parsing query: GROUP BY requires at least one aggregate function")
        return stmt

    def subquery(self) -> Select:
        """``(SELECT …)`` after FROM, the opening parenthesis read: one level deep, the only source."""
        if self.nested:
            raise InfluxQLError(
                "error parsing query: subqueries nested more than one level are not supported"
            )
        self.expect_kw("SELECT")
        self.nested = True
        inner = self.select()
        self.nested = False
        self.expect_op(")")
        if self.tok.kind == "op" and self.tok.text == ",":
            raise InfluxQLError("error parsing query: a subquery beside other sources is not supported")
        return inner

    def column(self) -> SelectColumn:
        if self.accept_op("*"):
            return SelectColumn("*")
        expr = self.expr()
        alias = self.alias()
        if isinstance(expr, FieldRef):
            return SelectColumn(expr.name, None, alias)
        if isinstance(expr, Call) and expr.name in FUNCTIONS:
            if len(expr.args) == 1 and isinstance(expr.args[0], FieldRef):
                return SelectColumn(expr.args[0].name, expr.name, alias)
        fields = expr_fields(expr)
        outer = expr.name if isinstance(expr, Call) else None
        return SelectColumn(fields[0] if fields else "", outer, alias, expr)

    # -- expressions: + - below * /, unary minus, parentheses, calls --

    def expr(self) -> Expr:
        left = self.product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.operator()
            left = BinaryOp(op, left, self.product())
        return left

    def product(self) -> Expr:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.operator()
            left = BinaryOp(op, left, self.unary())
        return left

    def operator(self) -> str:
        """The next operator, counted: every operator is a level of the tree the executor walks
        recursively, so a query of thousands of them is refused before it can exhaust the stack."""
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise InfluxQLError(f"error parsing query: more than {MAX_OPERATORS} operators in one statement")
        return self.next().text

    def unary(self) -> Expr:
        if self.tok.kind == "op" and self.tok.text == "-":
            self.operator()
            operand = self.unary()
            if isinstance(operand, Number):
                return Number(-operand.value, operand.integer)
            return BinaryOp("*", Number(-1.0, True), operand)
        return self.operand()

    def operand(self) -> Expr:
        token = self.tok
        if self.accept_op("("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise InfluxQLError(f"error parsing query: parentheses nested deeper than {MAX_NESTING}")
            inner = self.expr()
            self.expect_op(")")
            self.depth -= 1
            return inner
        if token.kind == "number":
            self.next()
            integer = token.text.isdigit()
            return Number(float(int(token.text)) if integer else float(token.text), integer)
        if token.kind == "duration":
            return Duration(self.duration())
        name = self.ident("field or function")
        if token.kind == "ident" and self.accept_op("("):
            return self.call(name)
        return FieldRef(name)

    def call(self, name: str) -> Call:
        function = name.lower()
        if self.accept_op("*"):
            raise InfluxQLError(f"error parsing query: {function}(*) is not supported")
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise InfluxQLError(f"error parsing query: parentheses nested deeper than {MAX_NESTING}")
        args = [self.expr()] if not self.tok.text == ")" else []
        while self.accept_op(","):
            args.append(self.expr())
        self.expect_op(")")
        self.depth -= 1
        return Call(function, tuple(args))

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
            elif isinstance(item, FieldFilter):
                stmt.field_filters.append(item)
            else:
                stmt.tags.append(item)

    def tag_condition(self) -> tuple[Condition, ...]:
        """A WHERE clause of tag conditions only (SHOW statements)."""
        items = _top_level(self.disjunction())
        if any(isinstance(item, _TimeBound) for item in items):
            raise InfluxQLError("error parsing query: time conditions in SHOW are not supported")
        return tuple(items)  # type: ignore[arg-type]

    def disjunction(self) -> _Item:
        items = [self.conjunction()]
        while self.accept_kw("OR"):
            items.append(self.conjunction())
        if len(items) == 1:
            return items[0]
        if any(_has_time(item) for item in items):
            raise InfluxQLError("error parsing query: time conditions combined with OR are not supported")
        if any(_has_field(item) for item in items):
            raise InfluxQLError("error parsing query: field conditions combined with OR are not supported")
        return AnyOf(tuple(items))  # type: ignore[arg-type]

    def conjunction(self) -> _Item:
        items = [self.term()]
        while self.accept_kw("AND"):
            items.append(self.term())
        return items[0] if len(items) == 1 else AllOf(tuple(items))  # type: ignore[arg-type]

    def term(self) -> _Item:
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
        if self.fields_ok and (self.tok.kind == "number" or self.tok.text == "-"):
            return FieldFilter(left, "!=" if op == "<>" else op, self.signed_number())
        if op not in ("=", "!=", "<>"):
            raise InfluxQLError("error parsing query: tags compare with =, !=, =~ or !~ only")
        if self.tok.kind != "string":
            raise self.fail("string")
        return TagFilter(left, "=" if op == "=" else "!=", self.next().value)

    def signed_number(self) -> float:
        negative = self.accept_op("-")
        if self.tok.kind != "number":
            raise self.fail("number")
        return float(self.next().text) * (-1 if negative else 1)

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
                stmt.every = every
                if self.accept_op(","):
                    self.time_offset(stmt)
                self.expect_op(")")
            else:
                stmt.group_tags.append(self.ident("tag key"))
            if not self.accept_op(","):
                return

    def time_offset(self, stmt: Select) -> None:
        """``time(d, offset)``'s offset: a duration (negative too, or sums, multiples and quotients of
        durations, which InfluxDB folds; taken modulo ``d`` as InfluxDB takes it) or ``now()`` (the time
        since Go's zero time, year 1, modulo ``d``: InfluxDB truncates ``now`` by ``d`` from there).
        Anything else is InfluxDB's statement error, kept in ``invalid``."""
        if self.tok.kind == "string":
            problem = _string_offset_problem(self.next().value)
        else:
            expr = self.expr()
            problem = None
            if isinstance(expr, Call):
                problem = _now_problem(expr)
                stmt.origin = self.now + _ZERO_TIME_TO_EPOCH_US
            else:
                folded = _folded_duration(expr)
                if folded is None:
                    problem = "time dimension offset must be duration or now()"
                stmt.origin = folded or 0
        while self.accept_op(","):  # time(d, a, b): InfluxDB counts the arguments when it compiles
            self.expr()
            problem = "time dimension expected 1 or 2 arguments"
        # Go's remainder keeps the sign: time(1d, -90m) is not time(1d, 22h30m) across a DST change.
        every = stmt.every or 1
        stmt.origin = abs(stmt.origin) % every * (1 if stmt.origin >= 0 else -1)
        stmt.invalid = stmt.invalid or problem

    def fill(self) -> str | float:
        self.expect_op("(")
        if self.tok.is_kw("NONE", "NULL", "PREVIOUS"):
            value: str | float = self.next().text.lower()
        elif self.tok.is_kw("LINEAR"):
            value = self.next().text.lower()
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


def _has_time(item: _Item) -> bool:
    if isinstance(item, _TimeBound):
        return True
    return isinstance(item, AllOf | AnyOf) and any(_has_time(i) for i in item.items)


def _has_field(item: object) -> bool:
    if isinstance(item, FieldFilter):
        return True
    return isinstance(item, AllOf | AnyOf) and any(_has_field(i) for i in item.items)


def _top_level(item: _Item) -> list[_Item]:
    """The conditions ANDed at the top of a WHERE clause (nested ANDs flattened)."""
    if isinstance(item, AllOf):
        return [flat for inner in item.items for flat in _top_level(inner)]
    return [item]
