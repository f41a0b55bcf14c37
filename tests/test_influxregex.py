"""influxregex: RE2's grammar and linear-time matching, against Python's re where the two agree,
against Go's wording where RE2 refuses, and on patterns that make a backtracking engine hang."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldstation.influxregex import MAX_PATTERN, RegexError, compile_pattern

# -- generated patterns in the part of the syntax where RE2 and Python's re mean the same ---------

_ALPHABET = "abc.-_ 1"
_literal = st.sampled_from(["a", "b", "c", "\\.", "-", "_", " ", "1", "\\-"])
_class = st.sampled_from(["[a-c]", "[^a]", "[ab1]", "[^ .]", "\\d", "\\w", "\\s", "\\D", "[.]", "[-a]", "."])
_anchor = st.sampled_from(["^", "$", "\\b", "\\B", "\\A", "\\z"])


def _quantified(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    suffix = st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,3}", "{0,}", "*?", "+?"])
    return st.tuples(inner, suffix).map(lambda p: p[0] + p[1])


def _pattern() -> st.SearchStrategy[str]:
    atom = st.one_of(_literal, _class)
    return st.recursive(
        _quantified(atom),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=4).map("".join),
            st.lists(inner, min_size=2, max_size=3).map("|".join),
            _quantified(inner.map(lambda p: f"({p})")),
            _quantified(inner.map(lambda p: f"(?:{p})")),
            st.tuples(_anchor, inner).map("".join),
            st.tuples(inner, _anchor).map("".join),
            inner.map(lambda p: f"(?i:{p})"),
        ),
        max_leaves=8,
    )


def _python(pattern: str) -> re.Pattern[str]:
    """The same pattern for Python's re (ASCII classes; RE2's \\z is Python's \\Z)."""
    return re.compile(pattern.replace("\\z", "\\Z"), re.ASCII)


@given(_pattern(), st.lists(st.text(_ALPHABET + "ABC", max_size=12), min_size=1, max_size=8))
def test_matches_as_python_re_where_both_read_the_pattern_alike(pattern: str, subjects: list[str]) -> None:
    ours = compile_pattern(pattern)
    theirs = _python(pattern)
    for subject in subjects:
        if not subject and "\\B" in pattern:
            continue  # Python's \B never matches the empty text (until 3.14); RE2's does
        assert ours.search(subject) == (theirs.search(subject) is not None), (pattern, subject)


@given(st.text(max_size=40))
def test_any_text_compiles_or_raises_regex_error(text: str) -> None:
    try:
        compiled = compile_pattern(text)
    except RegexError as exc:
        message = exc.message
    else:
        compiled.search(text)
        compiled.search("")
        return
    assert message.startswith("error parsing regexp: ")


# -- where RE2 and Python's re differ, RE2's reading ---------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("x{,2}", ["x{,2}"], ["xx", ""]),  # not a repeat in RE2: a literal brace
        ("[[:alpha:]]+", ["a"], ["1", ":"]),  # a POSIX class, not a set of brackets and colons
        ("[[:^digit:]]", ["a"], ["1"]),
        ("\\d", ["7"], ["٣"]),  # ASCII digits only
        ("\\w", ["a"], ["é"]),
        ("a$", ["a"], ["a\n"]),  # $ is the end of the text, not before a final newline
        ("(?m)a$", ["a\nb"], ["ab"]),
        ("(?s)a.b", ["a\nb"], []),
        ("a.b", ["axb"], ["a\nb"]),
        ("\\Qa.b\\E", ["a.b"], ["axb"]),
        ("\\x41\\x{42}\\101", ["ABA"], ["AB"]),
        ("\\pL\\p{Lu}\\PL", ["éA1"], ["éa1"]),
        ("(?i)straße", ["STRAßE"], []),
        ("(?i:a)b", ["Ab"], ["aB"]),
        ("(?P<room>lab)", ["lab"], ["hall"]),
        ("[]a]", ["]"], ["b"]),
        ("\\B", [""], ["a"]),
        ("^(lab|hall)$", ["lab", "hall"], ["labs", "a lab"]),
        ("^a\\.b/c$", ["a.b/c"], ["axb/c"]),
    ],
)
def test_re2_readings(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    compiled = compile_pattern(pattern)
    assert [compiled.search(s) for s in matching] == [True] * len(matching)
    assert [compiled.search(s) for s in not_matching] == [False] * len(not_matching)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(?=a)", "invalid or unsupported Perl syntax: `(?=`"),
        ("(?<!a)b", "invalid or unsupported Perl syntax: `(?<`"),
        ("(a)\\1", "invalid escape sequence: `\\1`"),
        ("\\Z", "invalid escape sequence: `\\Z`"),
        ("a{1001}", "invalid repeat count: `{1001}`"),
        ("a{3,2}", "invalid repeat count: `{3,2}`"),
        ("a**", "invalid nested repetition operator: `**`"),
        ("a*+", "invalid nested repetition operator: `*+`"),
        ("*a", "missing argument to repetition operator: `*`"),
        ("(a", "missing closing ): `(a`"),
        ("a)", "unexpected ): `a)`"),
        ("[a", "missing closing ]: `[a`"),
        ("[z-a]", "invalid character class range: `z-a`"),
        ("[[:nope:]]", "invalid character class range: `[:nope:]`"),
        ("a\\", "trailing backslash at end of expression: ``"),
        ("\\p{Greek}", "invalid character class range: `\\p{Greek}`"),  # scripts: not supported here
    ],
)
def test_refused_in_go_s_words(pattern: str, message: str) -> None:
    with pytest.raises(RegexError) as caught:
        compile_pattern(pattern)
    assert caught.value.message == f"error parsing regexp: {message}"


def test_bounded_pattern_and_program() -> None:
    with pytest.raises(RegexError, match="expression too large"):
        compile_pattern("a" * (MAX_PATTERN + 1))
    with pytest.raises(RegexError, match="too large"):
        compile_pattern("((a{1000}){1000}){1000}")


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [
        ("(a|a)*b", "a" * 20_000),
        ("(a+)+$", "a" * 20_000 + "!"),
        (".*.*.*.*x", "y" * 20_000),
        ("(x+x+)+y", "x" * 20_000),
        ("^(a|aa)*c$", "a" * 20_000),
    ],
)
def test_patterns_that_backtrack_exponentially_in_python_answer(pattern: str, subject: str) -> None:
    """Each of these holds Python's re for longer than the age of the universe on this subject."""
    assert compile_pattern(pattern).search(subject) is False
    assert compile_pattern(pattern).search(subject[:3] + "b" + "y" + "c") in (True, False)


def test_a_dfa_that_explodes_is_refused_rather_than_hold_a_worker() -> None:
    """A new DFA state per character: the search stops at MAX_WORK positions with a 400."""
    exploding = compile_pattern("(a|b)*a(a|b){200}c")
    assert exploding.search("ab" * 20 + "c") is False  # short texts are answered
    rng = random.Random(4)
    with pytest.raises(RegexError, match="too costly"):
        exploding.search("".join(rng.choice("ab") for _ in range(60_000)))
