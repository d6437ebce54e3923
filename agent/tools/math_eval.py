"""Safe arithmetic: an AST walker over a whitelist of operators, functions and constants.

No `eval`: names, attributes, calls other than the listed functions, comprehensions and
lambdas are rejected. Integer results are bounded before they are computed: the number of
digits of `a ** b`, `factorial`, `comb` and `perm` is estimated with log10/lgamma and calls
above `MAX_DIGITS` are refused. `MathWorker` runs `evaluate` in a child process that is killed
and replaced when a call overruns its deadline, so nothing a caller sends can keep the tool
server busy.
"""

from __future__ import annotations

import ast
import math
import multiprocessing
import operator
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from agent.errors import MathEvalError

__all__ = ["MAX_DIGITS", "MathWorker", "evaluate"]

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
"""Largest |exponent| for non-integer powers (integer powers are bounded by their digits)."""
MAX_DIGITS = 4_000
"""Largest integer result, in decimal digits (below CPython's 4300-digit int-to-str limit)."""
_LN10 = math.log(10)


def _check_digits(digits: float, what: str) -> None:
    if digits > MAX_DIGITS:
        raise MathEvalError(
            f"{what} would have about {digits:.3g} digits; results are limited to "
            f"{MAX_DIGITS} digits"
        )


def _nonneg_int(name: str, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise MathEvalError(f"{name} needs non-negative integers, got {x!r}")
    return x


def _log10_factorial(n: int) -> float:
    return math.lgamma(n + 1) / _LN10


def _factorial(x: Number) -> int:
    n = _nonneg_int("factorial", x)
    _check_digits(_log10_factorial(n), f"factorial({n})")
    return math.factorial(n)


def _comb(n: Number, k: Number) -> int:
    n, k = _nonneg_int("comb", n), _nonneg_int("comb", k)
    if k <= n:
        digits = _log10_factorial(n) - _log10_factorial(k) - _log10_factorial(n - k)
        _check_digits(digits, f"comb({n}, {k})")
    return math.comb(n, k)


def _perm(n: Number, k: Number | None = None) -> int:
    n = _nonneg_int("perm", n)
    k = n if k is None else _nonneg_int("perm", k)
    if k <= n:
        _check_digits(_log10_factorial(n) - _log10_factorial(n - k), f"perm({n}, {k})")
    return math.perm(n, k)


def _round(x: Number, ndigits: int | None = None) -> Number:
    if ndigits is not None and isinstance(ndigits, int) and abs(ndigits) > MAX_DIGITS:
        raise MathEvalError(f"round: ndigits must be within +-{MAX_DIGITS}, got {ndigits}")
    return round(x, ndigits)  # type: ignore[arg-type]


def _int_pow_digits(base: int, exponent: int) -> float:
    """Estimated decimal digits of `base ** exponent` for integers, exponent >= 0."""
    if abs(base) <= 1 or exponent <= 0:
        return 1.0
    return exponent * math.log10(abs(base))


_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": _round,
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
    "comb": _comb,
    "perm": _perm,
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
        if isinstance(node.op, ast.Pow):
            if isinstance(left, int) and isinstance(right, int):
                _check_digits(_int_pow_digits(left, right), f"{left} ** {right}")
            elif isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise MathEvalError(f"exponent {right} exceeds {_MAX_EXPONENT}")
        try:
            value = _BINOPS[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError, ValueError) as exc:
            raise MathEvalError(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(value, int):
            _check_digits(value.bit_length() * math.log10(2), "the result")
        return value
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
            raise MathEvalError(f"function not allowed: {ast.unparse(node.func)}")
        args = [_eval(a) for a in node.args]
        try:
            value = _FUNCS[node.func.id](*args)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:
            raise MathEvalError(f"{node.func.id}: {exc}") from exc
        if isinstance(value, int):
            _check_digits(value.bit_length() * math.log10(2), f"{node.func.id}(...)")
        return value
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


def _serve(conn: Connection, max_digits: int) -> None:
    """Child-process loop of `MathWorker`: expression in, `(ok, value or message)` out."""
    global MAX_DIGITS
    MAX_DIGITS = max_digits
    conn.send((True, "ready"))
    while True:
        try:
            expression = conn.recv()
        except EOFError:
            return
        try:
            conn.send((True, evaluate(expression)))
        except MathEvalError as exc:
            conn.send((False, str(exc)))
        except Exception as exc:  # any failure goes back as a message
            conn.send((False, f"{type(exc).__name__}: {exc}"))


class MathWorker:
    """Runs `evaluate` in a child process with a deadline; an overrunning child is killed.

    One child serves the calls one at a time (a lock serialises threads) and is started lazily
    and again after a kill. Use as a context manager or call `close()`.
    """

    def __init__(
        self, timeout_s: float = 5.0, max_digits: int = MAX_DIGITS, start_timeout_s: float = 30.0
    ) -> None:
        self.timeout_s = timeout_s
        """Seconds one evaluation may take before the child is killed."""
        self.max_digits = max_digits
        """Digit limit of integer results in the child (see `MAX_DIGITS`)."""
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_serve, args=(child, self.max_digits), name="math-worker", daemon=True
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if not parent.poll(self.start_timeout_s):
            self._kill()
            raise MathEvalError("the math worker did not start")
        parent.recv()
        return parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def evaluate(self, expression: str) -> Number:
        """`evaluate(expression)` in the child; MathEvalError on bad input or overrun."""
        with self._lock:
            alive = self._proc is not None and self._proc.is_alive()
            conn = self._conn if alive and self._conn is not None else self._start()
            try:
                conn.send(expression)
                if not conn.poll(self.timeout_s):
                    self._kill()
                    raise MathEvalError(
                        f"evaluation took longer than {self.timeout_s:g} s and was stopped"
                    )
                ok, payload = conn.recv()
            except (EOFError, OSError) as exc:
                self._kill()
                raise MathEvalError(f"the math worker died: {exc!r}") from exc
        if not ok:
            raise MathEvalError(payload)
        return payload

    def close(self) -> None:
        """Stop the child process."""
        with self._lock:
            self._kill()

    def __enter__(self) -> MathWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
