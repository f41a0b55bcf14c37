"""Regular expressions as InfluxDB 1.x reads them (Go's RE2 syntax), matched in linear time.

Why not Python's ``re``: it backtracks, so a client's ``(a|a)*b`` or ``.*.*.*x``
over a long tag value would hold a worker for minutes, where RE2 (and so InfluxDB)
never backtracks. And the two read some patterns differently: ``x{,2}`` (RE2: a
literal), ``[[:alpha:]]``, ``\\d`` (RE2: ASCII digits only), ``$`` (Python: also
before a final newline), lookarounds and backreferences (RE2 refuses them). So a
pattern is parsed here by RE2's grammar, refused with Go's wording where Go refuses
it, compiled to a small NFA and run as a lazily built DFA: time linear in the
subject, the DFA cache bounded by :data:`MAX_STATES` and :data:`MAX_CACHED` and the
program by :data:`MAX_PROGRAM`. A pattern whose DFA explodes (``(a|b)*a(a|b){500}``) builds a
state per character; past :data:`MAX_WORK` such steps in one search it is refused (a 400)
rather than hold a worker. Matching is unanchored, as Go's ``MatchString``.

Pure: no Flask, no database. Unicode scripts (``\\p{Greek}``) and ``\\C`` are not
supported (Python has no script table): such patterns are refused.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from fieldstation.errors import BadRequest

#: Longest pattern accepted (Grafana's multi-value variables make long alternations).
MAX_PATTERN = 8_192
#: Most NFA instructions (RE2 refuses counted repetitions over 1000 the same way).
MAX_PROGRAM = 20_000
#: DFA states kept before the cache is dropped and rebuilt (RE2 does the same), and the most
#: NFA positions they may hold in all (memory per pattern stays a few MB).
MAX_STATES = 4_096
MAX_CACHED = 200_000
#: NFA positions visited by one search that misses the cache (each a state built): past it the
#: pattern is refused rather than a worker held (only patterns whose DFA explodes on a long text).
MAX_WORK = 500_000
#: Longest text whose answer is remembered.
MAX_REMEMBERED = 256
MAX_REPEAT = 1000


class RegexError(BadRequest):
    """A pattern RE2 refuses, or one outside what this module can match the same way."""


def _fail(code: str, detail: str) -> RegexError:
    return RegexError(f"error parsing regexp: {code}: `{detail}`")


# -- character sets -----------------------------------------------------------------------------

_ASCII_WORD = ((48, 57), (65, 90), (95, 95), (97, 122))
_PERL = {"d": ((48, 57),), "s": ((9, 10), (12, 13), (32, 32)), "w": _ASCII_WORD}
_POSIX = {
    "alnum": ((48, 57), (65, 90), (97, 122)),
    "alpha": ((65, 90), (97, 122)),
    "ascii": ((0, 127),),
    "blank": ((9, 9), (32, 32)),
    "cntrl": ((0, 31), (127, 127)),
    "digit": ((48, 57),),
    "graph": ((33, 126),),
    "lower": ((97, 122),),
    "print": ((32, 126),),
    "punct": ((33, 47), (58, 64), (91, 96), (123, 126)),
    "space": ((9, 13), (32, 32)),
    "upper": ((65, 90),),
    "word": _ASCII_WORD,
    "xdigit": ((48, 57), (65, 70), (97, 102)),
}
_MAX_CODE = 0x10FFFF


def _negate(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, low = [], 0
    for lo, hi in _normal(ranges):
        if lo > low:
            out.append((low, lo - 1))
        low = hi + 1
    if low <= _MAX_CODE:
        out.append((low, _MAX_CODE))
    return out


def _normal(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


@dataclass(frozen=True, slots=True)
class CharSet:
    """Code point ranges (and Unicode categories), negated or not, compared case-folded or not."""

    ranges: tuple[tuple[int, int], ...]
    categories: tuple[str, ...] = ()  # general categories such as "L" or "Lu" (\pL, \p{Lu})
    negated_categories: tuple[str, ...] = ()
    negated: bool = False
    fold: bool = False
    _starts: tuple[int, ...] = field(default=(), compare=False)

    def matches(self, char: str) -> bool:
        variants = (char, char.lower(), char.upper()) if self.fold else (char,)
        found = any(self._has(v) for v in variants if len(v) == 1)
        return found != self.negated

    def _has(self, char: str) -> bool:
        code = ord(char)
        starts = self._starts or tuple(lo for lo, _ in self.ranges)
        at = bisect.bisect_right(starts, code) - 1
        if at >= 0 and self.ranges[at][1] >= code:
            return True
        if self.categories or self.negated_categories:
            category = unicodedata.category(char)
            if any(category.startswith(c) for c in self.categories):
                return True
            return any(not category.startswith(c) for c in self.negated_categories)
        return False


def _charset(
    ranges: list[tuple[int, int]],
    negated: bool,
    fold: bool,
    cats: list[str] | None = None,
    ncats: list[str] | None = None,
) -> CharSet:
    normal = tuple(_normal(ranges))
    return CharSet(
        normal, tuple(cats or ()), tuple(ncats or ()), negated, fold, tuple(lo for lo, _ in normal)
    )


_ANY = _charset([(0, _MAX_CODE)], False, False)
_ANY_BUT_NEWLINE = _charset([(10, 10)], True, False)

# -- the parse tree ----------------------------------------------------------------------------

# Nodes: ("set", CharSet) | ("cat", [nodes]) | ("alt", [nodes]) | ("rep", node, min, max|None)
# | ("assert", kind) | ("empty",). Assertion kinds below.
BEGIN_TEXT, END_TEXT, BEGIN_LINE, END_LINE, WORD_BOUNDARY, NOT_WORD_BOUNDARY = range(6)
Node = tuple[Any, ...]


class _Parser:
    """RE2's grammar (Go's regexp/syntax with Perl flags), one character at a time."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.i = 0
        self.flags = {"i": False, "m": False, "s": False, "U": False}
        self.depth = 0

    def peek(self, offset: int = 0) -> str:
        at = self.i + offset
        return self.text[at] if at < len(self.text) else ""

    def parse(self) -> Node:
        node = self.alternation()
        if self.i < len(self.text):  # only an unmatched ")" stops an alternation early
            raise _fail("unexpected )", self.text)
        return node

    def alternation(self) -> Node:
        branches = [self.concatenation()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.concatenation())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def concatenation(self) -> Node:
        items: list[Node] = []
        while self.i < len(self.text) and self.peek() not in "|)":
            atom = self.atom()
            if atom is None:  # a flag group such as (?i): changes what follows
                continue
            items.append(self.repeats(atom))
        return ("cat", items) if items else ("empty",)

    def repeats(self, atom: Node) -> Node:
        previous = ""
        while True:
            start = self.i
            char = self.peek()
            if char in ("*", "+", "?"):
                self.i += 1
                low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
            elif char == "{" and (counted := self.counted()) is not None:
                low, high = counted
            else:
                return atom
            if self.peek() == "?":  # non-greedy: the same language
                self.i += 1
            if previous:
                raise _fail("invalid nested repetition operator", previous + self.text[start : self.i])
            previous = self.text[start : self.i]
            atom = ("rep", atom, low, high)

    def counted(self) -> tuple[int, int | None] | None:
        """``{n}``, ``{n,}`` or ``{n,m}``; None when the brace is a literal (RE2 reads ``{,2}`` so)."""
        end = self.text.find("}", self.i)
        body = self.text[self.i + 1 : end] if end > 0 else ""
        low_text, comma, high_text = body.partition(",")
        if not low_text.isdigit() or not low_text.isascii() or (high_text and not high_text.isdigit()):
            return None
        if high_text and not high_text.isascii():
            return None
        detail = self.text[self.i : end + 1]
        self.i = end + 1
        low = int(low_text) if len(low_text) < 6 else MAX_REPEAT + 1
        high: int | None = low if not comma else (int(high_text) if high_text else None)
        if high is not None and len(high_text) >= 6:
            high = MAX_REPEAT + 1
        if low > MAX_REPEAT or (high is not None and (high > MAX_REPEAT or high < low)):
            raise _fail("invalid repeat count", detail)
        return low, high

    def atom(self) -> Node | None:
        char = self.peek()
        if char in ("*", "+", "?") or (char == "{" and self.counted_ahead()):
            raise _fail("missing argument to repetition operator", char)
        self.i += 1
        if char == "(":
            return self.group()
        if char == "[":
            return ("set", self.char_class())
        if char == ".":
            return ("set", _ANY if self.flags["s"] else _ANY_BUT_NEWLINE)
        if char == "^":
            return ("assert", BEGIN_LINE if self.flags["m"] else BEGIN_TEXT)
        if char == "$":
            return ("assert", END_LINE if self.flags["m"] else END_TEXT)
        if char == "\\":
            return self.escape_atom()
        return self.literal(char)

    def counted_ahead(self) -> bool:
        saved = self.i
        try:
            return self.counted() is not None
        finally:
            self.i = saved

    def literal(self, char: str) -> Node:
        return ("set", _charset([(ord(char), ord(char))], False, self.flags["i"]))

    def group(self) -> Node | None:
        start = self.i - 1
        if self.peek() == "?":
            if self.text.startswith("?P<", self.i):
                close = self.text.find(">", self.i)
                name = self.text[self.i + 3 : close] if close > 0 else ""
                if not name or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
                    raise _fail("invalid named capture", self.text[start : close + 1 if close > 0 else None])
                self.i = close + 1
            else:
                return self.flag_group(start)
        return self.group_body(dict(self.flags))

    def flag_group(self, start: int) -> Node | None:
        self.i += 1  # the "?"
        negate = False
        changes: dict[str, bool] = {}
        while self.i < len(self.text):
            char = self.peek()
            self.i += 1
            if char in self.flags:
                changes[char] = not negate
            elif char == "-" and not negate:
                negate = True
            elif char in (":", ")") and not (negate and not changes):
                saved = dict(self.flags)
                self.flags.update(changes)
                if char == ")":
                    return None  # applies to the rest of the enclosing group
                return self.group_body(saved)
            else:
                break
        raise _fail("invalid or unsupported Perl syntax", self.text[start : self.i])

    def group_body(self, restore: dict[str, bool]) -> Node:
        self.depth += 1
        if self.depth > 1000:
            raise _fail("expression nests too deeply", self.text[:20])
        node = self.alternation()
        if self.peek() != ")":
            raise _fail("missing closing )", self.text)
        self.i += 1
        self.depth -= 1
        self.flags = restore
        return node

    # -- escapes and classes --

    def escape_atom(self) -> Node:
        char = self.peek()
        simple = {"A": BEGIN_TEXT, "z": END_TEXT, "b": WORD_BOUNDARY, "B": NOT_WORD_BOUNDARY}
        if char in simple:
            self.i += 1
            return ("assert", simple[char])
        if char == "Q":
            end = self.text.find("\\E", self.i)
            literal = self.text[self.i + 1 : end if end >= 0 else None]
            self.i = end + 2 if end >= 0 else len(self.text)
            return ("cat", [self.literal(c) for c in literal]) if literal else ("empty",)
        ranges, cats, ncats, negated = self.escape()
        return ("set", _charset(ranges, negated, self.flags["i"], cats, ncats))

    def escape(self) -> tuple[list[tuple[int, int]], list[str], list[str], bool]:
        """The escape after a backslash: its ranges, categories and whether it is negated."""
        start = self.i - 1
        char = self.peek()
        self.i += 1
        if not char:
            raise _fail("trailing backslash at end of expression", "")
        if char in "dswDSW":
            return list(_PERL[char.lower()]), [], [], char.isupper()
        if char in "pP":
            return self.unicode_class(start, char == "P")
        code = self.escape_code(char, start)
        return [(code, code)], [], [], False

    def escape_code(self, char: str, start: int) -> int:
        if char in "01234567":
            digits = char
            while len(digits) < 3 and self.peek() and self.peek() in "01234567":
                digits += self.peek()
                self.i += 1
            if char != "0" and len(digits) == 1:  # \1 is a backreference: RE2 has none
                raise _fail("invalid escape sequence", self.text[start : self.i])
            return int(digits, 8)
        if char == "x":
            return self.hex_escape(start)
        controls = {"a": 7, "f": 12, "t": 9, "n": 10, "r": 13, "v": 11}
        if char in controls:
            return controls[char]
        if char.isascii() and not char.isalnum():
            return ord(char)
        raise _fail("invalid escape sequence", self.text[start : self.i])

    def hex_escape(self, start: int) -> int:
        if self.peek() == "{":
            end = self.text.find("}", self.i)
            digits = self.text[self.i + 1 : end] if end > 0 else ""
            self.i = end + 1 if end > 0 else len(self.text)
        else:
            digits = self.text[self.i : self.i + 2]
            self.i += 2
        if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits) or len(digits) > 8:
            raise _fail("invalid escape sequence", self.text[start : self.i])
        code = int(digits, 16)
        if code > _MAX_CODE or (self.text[start + 2 : start + 3] != "{" and len(digits) != 2):
            raise _fail("invalid escape sequence", self.text[start : self.i])
        return code

    def unicode_class(
        self, start: int, negated: bool
    ) -> tuple[list[tuple[int, int]], list[str], list[str], bool]:
        if self.peek() == "{":
            end = self.text.find("}", self.i)
            name = self.text[self.i + 1 : end] if end > 0 else ""
            self.i = end + 1 if end > 0 else len(self.text)
        else:
            name = self.peek()
            self.i += 1
        if name.startswith("^"):
            name, negated = name[1:], not negated
        if name == "Any":
            return [(0, _MAX_CODE)], [], [], negated
        if name in _CATEGORIES:
            return [], [name], [], negated
        raise _fail("invalid character class range", self.text[start : self.i])

    def char_class(self) -> CharSet:
        start = self.i - 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        ranges: list[tuple[int, int]] = []
        cats: list[str] = []
        ncats: list[str] = []
        first = True
        while self.i < len(self.text) and (self.peek() != "]" or first):
            first = False
            if self.peek() == "[" and self.peek(1) == ":":
                posix = self.posix_class()
                if posix is not None:
                    ranges += posix
                    continue
            low_at = self.i
            low = self.class_char(ranges, cats, ncats)
            if low is None:
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                high = self.class_char(ranges, cats, ncats)
                if high is None or high < low:
                    raise _fail("invalid character class range", self.text[low_at : self.i])
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        if self.peek() != "]":
            raise _fail("missing closing ]", self.text[start:])
        self.i += 1
        return _charset(ranges, negated, self.flags["i"], cats, ncats)

    def class_char(self, ranges: list[tuple[int, int]], cats: list[str], ncats: list[str]) -> int | None:
        """One member's code point; None when the member was a whole class (``\\d``), added already."""
        char = self.peek()
        self.i += 1
        if char != "\\":
            return ord(char)
        escape = self.peek()
        if escape in "dswDSWpP" and escape:
            got, gcats, gncats, negated = self.escape()
            if negated:
                if gcats:
                    ncats += gcats
                else:
                    ranges += _negate(got)
            else:
                ranges += got
                cats += gcats
            return None
        if not escape:
            raise _fail("trailing backslash at end of expression", "")
        self.i += 1
        return self.escape_code(escape, self.i - 2)

    def posix_class(self) -> list[tuple[int, int]] | None:
        end = self.text.find(":]", self.i + 2)
        if end < 0:
            return None
        name = self.text[self.i + 2 : end]
        negated = name.startswith("^")
        ranges = _POSIX.get(name.lstrip("^"))
        if ranges is None:
            raise _fail("invalid character class range", self.text[self.i : end + 2])
        self.i = end + 2
        return _negate(list(ranges)) if negated else list(ranges)


_CATEGORIES = {
    "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No",
    "P", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So",
    "Z", "Zs", "Zl", "Zp", "C", "Cc", "Cf", "Co", "Cs",
}  # fmt: skip


# -- the program and its lazy DFA --------------------------------------------------------------

# Instructions: ("set", CharSet, next) | ("split", a, b) | ("assert", kind, next) | ("match",)


def _compile(node: Node, program: list[tuple[Any, ...]], follow: int) -> int:
    """Instructions for ``node`` ending in ``follow``; the entry's index. Built back to front."""
    if len(program) > MAX_PROGRAM:
        raise _fail("expression too large", "")
    kind = node[0]
    if kind == "empty":
        return follow
    if kind == "set":
        program.append(("set", node[1], follow))
        return len(program) - 1
    if kind == "assert":
        program.append(("assert", node[1], follow))
        return len(program) - 1
    if kind == "cat":
        for item in reversed(node[1]):
            follow = _compile(item, program, follow)
        return follow
    if kind == "alt":
        entries = [_compile(branch, program, follow) for branch in node[1]]
        entry = entries[-1]
        for other in reversed(entries[:-1]):
            program.append(("split", other, entry))
            entry = len(program) - 1
        return entry
    _, body, low, high = node
    if high is None:  # a loop: split(body → back here, follow)
        program.append(("split", -1, follow))
        loop = len(program) - 1
        program[loop] = ("split", _compile(body, program, loop), follow)
        entry = loop
    else:
        entry = follow
        for _ in range(high - low):  # optional copies, each skipping to what follows them all
            program.append(("split", _compile(body, program, entry), follow))
            entry = len(program) - 1
    for _ in range(low):
        entry = _compile(body, program, entry)
    return entry


def _kind(char: str) -> int:
    """0 the text's edge, 1 a newline, 2 an ASCII word character, 3 anything else."""
    if not char:
        return 0
    if char == "\n":
        return 1
    return 2 if char.isascii() and (char.isalnum() or char == "_") else 3


def _holds(kind: int, before: int, after: int) -> bool:
    if kind == BEGIN_TEXT:
        return before == 0
    if kind == END_TEXT:
        return after == 0
    if kind == BEGIN_LINE:
        return before in (0, 1)
    if kind == END_LINE:
        return after in (0, 1)
    boundary = (before == 2) != (after == 2)
    return boundary if kind == WORD_BOUNDARY else not boundary


class Regex:
    """A compiled pattern: :meth:`search` is Go's ``MatchString`` (anywhere in the text)."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN:
            raise _fail("expression too large", pattern[:20])
        self.pattern = pattern
        tree = _Parser(pattern).parse()
        self.program: list[tuple[Any, ...]] = [("match",)]
        self.start = _compile(tree, self.program, 0)
        if len(self.program) > MAX_PROGRAM:
            raise _fail("expression too large", pattern[:20])
        self._closures: dict[tuple[frozenset[int], int, int], tuple[frozenset[int], bool]] = {}
        self._steps: dict[tuple[frozenset[int], str], frozenset[int]] = {}
        self._results: dict[str, bool] = {}
        self._cached = 0  # NFA positions held by the two caches
        self._work = 0  # NFA positions visited by the current search

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text``, in time linear in its length.

        :raise RegexError: the search would visit more than :data:`MAX_WORK` positions.
        """
        known = self._results.get(text)
        if known is not None:
            return known
        found = self._run(text)
        if len(text) <= MAX_REMEMBERED:
            if len(self._results) > MAX_STATES:
                self._results.clear()
            self._results[text] = found
        return found

    def _run(self, text: str) -> bool:
        self._work = 0
        current: frozenset[int] = frozenset()
        before = 0
        for index in range(len(text) + 1):
            char = text[index] if index < len(text) else ""
            after = _kind(char)
            closed, matched = self._closure(current, before, after)
            if matched:
                return True
            if not char:
                return False
            current = self._step(closed, char)
            before = after
        return False

    def _closure(self, pcs: frozenset[int], before: int, after: int) -> tuple[frozenset[int], bool]:
        key = (pcs, before, after)
        got = self._closures.get(key)
        if got is not None:
            return got
        if len(self._closures) > MAX_STATES or self._cached > MAX_CACHED:
            self._closures.clear()
            self._steps.clear()
            self._cached = 0
        seen: set[int] = set()
        stack = [self.start, *pcs]
        program = self.program
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op = program[pc]
            if op[0] == "split":
                stack += (op[1], op[2])
            elif op[0] == "assert" and _holds(op[1], before, after):
                stack.append(op[2])
        closed = frozenset(pc for pc in seen if program[pc][0] in ("set", "match"))
        got = (closed, 0 in closed)
        self._closures[key] = got
        self._spend(len(seen), len(pcs) + len(closed))
        return got

    def _spend(self, visited: int, held: int) -> None:
        self._work += visited
        self._cached += held
        if self._work > MAX_WORK:
            raise RegexError(f"regular expression too costly to match: `{self.pattern[:40]}`")

    def _step(self, closed: frozenset[int], char: str) -> frozenset[int]:
        key = (closed, char)
        got = self._steps.get(key)
        if got is None:
            program = self.program
            got = frozenset(
                program[pc][2] for pc in closed if program[pc][0] == "set" and program[pc][1].matches(char)
            )
            self._steps[key] = got
            self._spend(len(closed), len(closed) + len(got))
        return got


def compile_pattern(pattern: str) -> Regex:
    """Parse and compile ``pattern`` as RE2 does.

    :raise RegexError: RE2 refuses it (Go's wording), or it is longer than :data:`MAX_PATTERN`.
    """
    return Regex(pattern)
