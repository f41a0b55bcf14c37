"""Calibration and computed fields: what a channel's fields make of a batch as it is stored.

A field may carry a calibration (``value * scale + offset``) and a computed field
an expression over the other fields of the same entry (``voltage * current``),
evaluated by simpleeval (an AST walker with a fixed set of operators and the
functions below: no ``eval``, no attribute access, capped powers). Both apply when
a reading is stored (:func:`fieldstation.store.write_rows` calls :func:`apply` for
the channels that have either), so every read path sees stored values. A computed
value that cannot be had (an input missing or text, a division by zero, a math
domain error, a result beyond the float range) is not stored; the write goes on.
Pure: no Flask, no database.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from simpleeval import FunctionNotDefined, InvalidExpression, NameNotDefined, SimpleEval

from fieldstation.errors import BadRequest
from fieldstation.points import Batch, SeriesValues, Value

#: Functions an expression may call (math on floats; nothing that reads or writes anything).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "pow": math.pow,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "atan": math.atan,
    "atan2": math.atan2,
    "hypot": math.hypot,
}
#: Names an expression may use besides the fields.
CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPRESSION = 500
#: Syntax an expression may use: arithmetic, comparisons, conditionals and calls of FUNCTIONS
#: (no attributes, subscripts, containers, comprehensions or lambdas, though simpleeval
#: guards some of those too).
_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Constant,
    ast.Load,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


@dataclass(frozen=True, slots=True)
class FieldRule:
    """What one field of a channel does to values stored through it."""

    number: int
    name: str
    scale: float | None = None
    offset: float | None = None
    expression: str | None = None

    @property
    def calibrated(self) -> bool:
        return self.scale is not None or self.offset is not None


def input_names(rules: Iterable[FieldRule]) -> dict[str, int]:
    """The names an expression may use for the channel's fields: ``field<N>``, and each name that
    is an identifier. Computed fields are not inputs (their order would matter)."""
    names: dict[str, int] = {}
    for rule in rules:
        if rule.expression:
            continue
        names[f"field{rule.number}"] = rule.number
        if rule.name.isidentifier() and rule.name not in FUNCTIONS and rule.name not in CONSTANTS:
            names.setdefault(rule.name, rule.number)
    return names


def check_expression(expression: str, rules: Iterable[FieldRule]) -> str:
    """The expression, stripped, if it can be evaluated over the channel's fields.

    :raise BadRequest: with the reason: a syntax error, an unknown name or
        function, or a construct simpleeval does not allow.
    """
    text = expression.strip()
    if not text or len(text) > MAX_EXPRESSION:
        raise BadRequest(f"an expression is 1-{MAX_EXPRESSION} characters", code="bad_expression")
    names = input_names(rules)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise BadRequest(f"expression: {exc.msg} at column {exc.offset}", code="bad_expression") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise BadRequest(f"expression: {type(node).__name__} is not allowed", code="bad_expression")
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            raise BadRequest("expression: only the named functions can be called", code="bad_expression")
    used = _names(tree)
    unknown = sorted(used - names.keys() - CONSTANTS.keys() - FUNCTIONS.keys())
    if unknown:
        raise BadRequest(
            f"expression: no input field named {unknown[0]!r} (use a field's name or field<N>; "
            "computed fields are not inputs)",
            code="bad_expression",
        )
    if not used & names.keys():
        raise BadRequest("expression: it uses no input field", code="bad_expression")
    evaluator = _evaluator()
    evaluator.names = dict.fromkeys(names, 1.5) | CONSTANTS
    try:
        probe = evaluator.eval(text)
    except (FunctionNotDefined, NameNotDefined, InvalidExpression) as exc:
        raise BadRequest(f"expression: {exc}", code="bad_expression") from None
    except (ArithmeticError, ValueError):
        return text  # a division by zero or a domain error at the probe values: fine at others
    except Exception as exc:  # noqa: BLE001 - e.g. a TypeError: the reason goes back to the user
        raise BadRequest(f"expression: {exc}", code="bad_expression") from None
    if isinstance(probe, bool) or not isinstance(probe, int | float):
        raise BadRequest("expression: the result must be a number", code="bad_expression")
    return text


def _names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _evaluator() -> SimpleEval:
    return SimpleEval(functions=dict(FUNCTIONS), names={})


@dataclass(frozen=True, slots=True)
class Rules:
    """A channel's calibrations and computed fields, ready to apply."""

    calibrations: dict[int, tuple[float, float]]
    #: (field number, expression, parsed tree, {name: input field number})
    computed: list[tuple[int, str, Any, dict[str, int]]]

    @classmethod
    def of(cls, rules: list[FieldRule]) -> Rules:
        names = input_names(rules)
        evaluator = _evaluator()
        computed = []
        for rule in rules:
            if rule.expression:
                tree = evaluator.parse(rule.expression)
                used = _names(ast.parse(rule.expression, mode="eval"))
                inputs = {k: names[k] for k in used if k in names}
                computed.append((rule.number, rule.expression, tree, inputs))
        calibrations = {
            r.number: (1.0 if r.scale is None else r.scale, 0.0 if r.offset is None else r.offset)
            for r in rules
            if r.calibrated and not r.expression
        }
        return cls(calibrations, computed)


def apply(batch: Batch, rules: Rules) -> Batch:
    """The batch as stored: calibrated values (unless ``batch.as_given``) and computed fields filled in.

    A computed field given a value in an entry keeps it (an imported export holds them).
    """
    calibrations = {} if batch.as_given else rules.calibrations
    evaluator = _evaluator()
    if batch.series is not None:
        series: dict[int, SeriesValues] = {}
        for number, given in batch.series.items():
            kept: SeriesValues = {}
            for ts, raw in given.items():
                calibrated = _calibrate(raw, calibrations.get(number))
                if calibrated is not None:
                    kept[ts] = calibrated
            series[number] = kept
        for number, _, tree, inputs in rules.computed:
            known = series.get(number, {})
            stamps: set[int | None] = set()
            for n in inputs.values():
                stamps.update(series.get(n, {}))
            made: SeriesValues = {}
            for ts in stamps:
                result = _evaluate(evaluator, tree, {k: series.get(n, {}).get(ts) for k, n in inputs.items()})
                if result is not None:
                    made[ts] = result
            if made or known:
                series[number] = made | known
        return replace(batch, series={n: v for n, v in series.items() if v})
    entries = []
    for entry in batch.entries:
        values: dict[int, Value] = {}
        for number, raw in entry.values.items():
            calibrated = _calibrate(raw, calibrations.get(number))
            if calibrated is not None:
                values[number] = calibrated
        for number, _, tree, inputs in rules.computed:
            if number in values or not inputs:
                continue
            result = _evaluate(evaluator, tree, {k: values.get(n) for k, n in inputs.items()})
            if result is not None:
                values[number] = result
        entries.append(replace(entry, values=values))
    return replace(batch, entries=entries)


def _calibrate(value: Value, calibration: tuple[float, float] | None) -> Value | None:
    if calibration is None or isinstance(value, str):
        return value
    result = value * calibration[0] + calibration[1]
    return result if math.isfinite(result) else None


def _evaluate(evaluator: SimpleEval, tree: Any, inputs: dict[str, Value | None]) -> float | None:
    """The expression over these inputs, or None when one is missing or text, or it fails."""
    if any(v is None or isinstance(v, str) for v in inputs.values()):
        return None
    evaluator.names = inputs | CONSTANTS
    try:
        result = evaluator.eval("", previously_parsed=tree)
    except Exception:  # noqa: BLE001 - any failure of one entry's arithmetic stores no value
        return None
    if isinstance(result, bool) or not isinstance(result, int | float):
        return None
    value = float(result)
    return value if math.isfinite(value) else None
