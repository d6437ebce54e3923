"""Safe arithmetic: an AST walker over a whitelist of operators, functions and constants.

No `eval`: names, attributes, calls other than the listed functions, comprehensions and
lambdas are rejected; big powers and factorials are capped so one call cannot hang the server.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from agent.errors import MathEvalError

__all__ = ["evaluate"]

Number = int | float | complex

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_MAX_EXPONENT = 10_000
_MAX_FACTORIAL = 1_000
_MAX_DIGITS = 5_000


def _factorial(x: Number) -> int:
    if not isinstance(x, int) or x < 0 or x > _MAX_FACTORIAL:
        raise MathEvalError(f"factorial needs an integer in [0, {_MAX_FACTORIAL}], got {x!r}")
    return math.factorial(x)


_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": _factorial,
    "gcd": math.gcd,
    "comb": math.comb,
    "perm": math.perm,
    "hypot": math.hypot,
    "degrees": math.degrees,
    "radians": math.radians,
}
_CONSTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float | complex):
            raise MathEvalError(f"only numbers are allowed, got {node.value!r}")
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _CONSTS:
            return _CONSTS[node.id]
        raise MathEvalError(f"unknown name {node.id!r}")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left), _eval(node.right)
        if (
            isinstance(node.op, ast.Pow)
            and isinstance(right, int | float)
            and abs(right) > _MAX_EXPONENT
        ):
            raise MathEvalError(f"exponent {right} exceeds {_MAX_EXPONENT}")
        try:
            value = _BINOPS[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError, ValueError) as exc:
            raise MathEvalError(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(value, int) and value.bit_length() > _MAX_DIGITS * 4:
            raise MathEvalError("result too large")
        return value
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
            raise MathEvalError(f"function not allowed: {ast.unparse(node.func)}")
        args = [_eval(a) for a in node.args]
        try:
            return _FUNCS[node.func.id](*args)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
            raise MathEvalError(f"{node.func.id}: {exc}") from exc
    raise MathEvalError(f"syntax not allowed: {type(node).__name__}")


def evaluate(expression: str) -> Number:
    """Value of an arithmetic expression, e.g. `evaluate("2**10 + sqrt(16)") == 1028.0`."""
    if len(expression) > 2_000:
        raise MathEvalError("expression longer than 2000 characters")
    try:
        tree = ast.parse(expression.replace("^", "**").strip(), mode="eval")
    except SyntaxError as exc:
        raise MathEvalError(f"cannot parse {expression!r}: {exc.msg}") from exc
    value = _eval(tree)
    if isinstance(value, bool) or not isinstance(value, int | float | complex):
        raise MathEvalError(f"expression did not evaluate to a number: {value!r}")
    return value
