"""InfluxQL conditions on tags and names: ``=``, ``!=``, ``=~``, ``!~`` joined by ``AND``/``OR``.

Pure. They are evaluated in Python over a channel's series (a few distinct tag values
and measurement names), never in SQL, and patterns run on :mod:`fieldstation.influxregex`
(linear time), so no client pattern can hold the server. A series without the tag
compares as the empty string, as InfluxDB compares.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from fieldstation.influxregex import Regex, compile_pattern

#: A series' tag value by key ('' when it has none).
TagLookup = Callable[[str], str]


@functools.lru_cache(maxsize=64)
def regex(pattern: str) -> Regex:
    """The compiled pattern, kept per process: Grafana sends the same ones with every refresh.

    :raise influxregex.RegexError: RE2 refuses it.
    """
    return compile_pattern(pattern)


def compare(op: str, actual: str, expected: str) -> bool:
    """``actual <op> expected`` for the four InfluxQL string comparisons (``expected`` a pattern for ~)."""
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    return regex(expected).search(actual) == (op == "=~")


@dataclass(frozen=True, slots=True)
class TagFilter:
    key: str
    op: str  # "=", "!=", "=~" or "!~"
    value: str  # the string compared with, or the pattern

    def holds(self, tag: TagLookup) -> bool:
        return compare(self.op, tag(self.key), self.value)


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]

    def holds(self, tag: TagLookup) -> bool:
        return all(item.holds(tag) for item in self.items)


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]

    def holds(self, tag: TagLookup) -> bool:
        return any(item.holds(tag) for item in self.items)


Condition = TagFilter | AllOf | AnyOf
