"""Import boundaries of every package, read from the source (STYLE.md 1, 8, 11, 12, 14).

Every `.py` under the six packages is parsed with `ast`; every import statement counts,
function-local ones included. No module list is written by hand: a new module is checked the
moment it exists. Failure messages name the file, line and import.
"""

from __future__ import annotations

import ast
import builtins
import fnmatch
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("recsys", "agent", "training", "serving", "data", "tracking", "bench", "memento")

ALIASES: dict[str, tuple[str, ...]] = {"mcp": ("mcp", "mcp_types")}
"""A library name -> the top-level modules it ships (the MCP SDK ships two)."""

PRODUCT = ("recsys", "agent", "training", "serving", "data", "tracking")
"""The product packages: none of them imports the experiments package `bench`."""

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "recsys": (
        "fastapi",
        "starlette",
        "uvicorn",
        "mlflow",
        "mcp",
        "typer",
        "training",
        "serving",
        "agent",
        "data",
        "tracking",
        "bench",
        "memento",
    ),
    "data": ("training", "serving", "agent", "tracking", "bench", "fastapi", "mlflow", "mcp"),
    "tracking": ("recsys", "training", "serving", "agent", "data", "bench", "memento", "fastapi"),
    "agent": ("training", "serving", "tracking", "bench", "memento", "fastapi", "mlflow"),
    "training": ("serving", "agent", "bench", "memento", "fastapi"),
    "serving": ("agent", "training", "bench", "memento"),
}
"""Package -> what none of its modules may import, even inside a function (dependencies point
one way: everything -> recsys; bench -> the product; never serving <-> training). No
exceptions: the registry download both training and serving use lives in `tracking`."""

ONE_IMPORTER: dict[str, tuple[str, ...]] = {
    "faiss": ("recsys/memory/faiss_index.py",),
    "transformers": ("recsys/llm/*",),
    "mcp": ("agent/tools/*",),
    "mlflow": ("tracking/registry.py",),
    "typer": ("*/cli.py",),
}
"""Awkward dependency -> the files (fnmatch patterns) that may import it."""

HEAVY_AT_IMPORT = ("fastapi", "starlette", "mlflow", "mcp", "mcp_types", "typer", "uvicorn")
"""Nothing of these may be loaded by importing any recsys module."""

PENDING: dict[tuple[str, str, str], str] = {}
"""Known violations in files the lead is rewriting: (rule, file, imported module or class)
-> what to do. Each excuses that one import or class only, and must still occur: a fixed one
fails the test until its entry is removed."""


@dataclass(frozen=True)
class Import:
    """One imported module name, as one statement of one file spells it."""

    file: str
    """Importing file, relative to the repo root."""
    line: int
    target: str
    """Absolute dotted module name (relative imports resolved)."""
    top_level: bool
    """Runs when the module is imported (not inside a function, not under TYPE_CHECKING)."""
    type_only: bool = False
    """Under `if TYPE_CHECKING:`: never runs, so it closes no import cycle."""

    def __str__(self) -> str:
        where = "" if self.top_level else " (function-local)"
        return f"{self.file}:{self.line} imports {self.target}{where}"


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def scan_source(source: str, rel: str) -> list[Import]:
    """Every import of one file; `from a import b` yields `a` and `a.b` (b may be a module)."""
    path = Path(rel)
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, top: bool, typing_only: bool = False) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(rel, node.lineno, a.name, top, typing_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if node.module:
                found.append(Import(rel, node.lineno, name, top, typing_only))
            found.extend(
                Import(rel, node.lineno, f"{name}.{a.name}", top, typing_only) for a in node.names
            )
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            only = typing_only
            if isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
                inner, only = False, True
            visit(child, inner, only)

    visit(ast.parse(source, filename=rel), True)
    return found


def _files() -> Iterator[Path]:
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


@cache
def all_imports() -> tuple[Import, ...]:
    """Every import of every module of every package."""
    out: list[Import] = []
    for path in _files():
        rel = path.relative_to(ROOT).as_posix()
        out += scan_source(path.read_text(encoding="utf-8"), rel)
    assert len(out) > 500, f"the walk found only {len(out)} imports: is ROOT={ROOT} right?"
    return tuple(out)


def _hits(target: str, lib: str) -> bool:
    return any(target == m or target.startswith(m + ".") for m in ALIASES.get(lib, (lib,)))


def _without_pending(
    rule: str, violations: dict[tuple[str, str], str], under: str = ""
) -> list[str]:
    """Messages of `violations` ((file, name) -> message) not excused by a PENDING entry of
    `rule` for a file under `under`, plus one per such entry that no longer occurs."""
    pending = [(f, n) for r, f, n in PENDING if r == rule and f.startswith(under)]

    def excused(file: str, name: str) -> bool:
        return any(file == f and _hits(name, n) for f, n in pending)

    bad = sorted(msg for (file, name), msg in violations.items() if not excused(file, name))
    bad += [
        f"PENDING entry {(rule, f, n)} no longer occurs: remove it"
        for f, n in pending
        if not any(file == f and _hits(name, n) for file, name in violations)
    ]
    return bad


def test_scanner_sees_local_relative_and_type_checking_imports() -> None:
    """The parser resolves relative imports and marks function-local and TYPE_CHECKING ones."""
    src = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from ..core import thing\n"
        "if TYPE_CHECKING:\n"
        "    import fastapi\n"
        "def f():\n"
        "    import mlflow.tracking\n"
    )
    got = {(i.target, i.top_level) for i in scan_source(src, "pkg/sub/mod.py")}
    assert ("pkg.sub.sibling", True) in got and ("pkg.core.thing", True) in got, got
    assert ("fastapi", False) in got and ("mlflow.tracking", False) in got, got


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    """No module of a package imports (even inside a function) what its layer forbids."""
    found = {
        (imp.file, imp.line, lib): imp
        for imp in reversed(all_imports())
        if imp.file.startswith(package + "/")
        for lib in FORBIDDEN[package]
        if _hits(imp.target, lib)
    }
    violations = {
        (imp.file, imp.target): f"{imp} -- {package} must not import {lib}"
        for (_, _, lib), imp in found.items()
    }
    bad = _without_pending("layers", violations, under=package + "/")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("lib", sorted(ONE_IMPORTER))
def test_awkward_dependency_has_one_importer(lib: str) -> None:
    """faiss, transformers, mcp, mlflow, ray and typer are each imported only where they
    belong."""
    patterns = ONE_IMPORTER[lib]
    users = [imp for imp in all_imports() if _hits(imp.target, lib)]
    assert users, f"nobody imports {lib}: the rule {patterns} is checking nothing"
    bad = {
        (imp.file, imp.line): f"{imp} -- only {' or '.join(patterns)} may import {lib}"
        for imp in reversed(users)
        if not any(fnmatch.fnmatch(imp.file, p) for p in patterns)
    }
    assert not bad, "\n".join(sorted(bad.values()))


def test_importing_every_recsys_module_loads_no_web_tracking_or_cli() -> None:
    """Each recsys module (walked by pkgutil) imports in a fresh process without loading
    fastapi, starlette, mlflow, mcp, typer, uvicorn or transformers (the LLM loads lazily)."""
    heavy = (*HEAVY_AT_IMPORT, "transformers")
    code = (
        "import importlib, pkgutil, sys\n"
        "import recsys\n"
        f"heavy = {heavy!r}\n"
        "names = sorted(m.name for m in pkgutil.walk_packages(recsys.__path__, 'recsys.'))\n"
        "assert len(names) > 20, names\n"
        "seen = set()\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "    for h in heavy:\n"
        "        if h in sys.modules and h not in seen:\n"
        "            seen.add(h)\n"
        "            print(f'{name} loaded {h}')\n"
        "print('imported', len(names), 'modules')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    bad = [line for line in out.stdout.splitlines() if " loaded " in line]
    assert not bad, "\n".join(bad)
    assert "imported" in out.stdout, out.stdout


def _module_graph(imports: tuple[Import, ...], modules: set[str]) -> dict[str, dict[str, Import]]:
    """Module -> {imported module: the import}, over every import (function-local and
    TYPE_CHECKING-free ones alike) between `modules`. `from a import b` counts as importing
    the module `a.b` when it exists, else `a`; a module's package `__init__` is not an edge."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in modules}
    for imp in imports:
        src = _module_name(Path(imp.file))
        if src not in modules or imp.type_only:
            continue
        target = imp.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != src and not src.startswith(target + "."):
            graph[src].setdefault(target, imp)
    return graph


def _all_modules() -> set[str]:
    return {_module_name(p.relative_to(ROOT)) for p in _files()}


def _cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _cycle_report(graph: dict[str, dict[str, Import]]) -> list[str]:
    bad = []
    for comp in _cycles(graph):
        members = set(comp)
        edges = [str(imp) for m in comp for t, imp in graph[m].items() if t in members]
        bad.append("cycle " + " <-> ".join(comp) + ":\n  " + "\n  ".join(edges))
    return bad


def test_no_import_cycles_anywhere() -> None:
    """No two modules import each other, directly or around a longer loop, inside a package
    or across packages, counting imports inside functions too."""
    bad = _cycle_report(_module_graph(all_imports(), _all_modules()))
    assert not bad, "\n".join(bad)


def test_cycle_check_catches_a_planted_function_local_cycle() -> None:
    """A loop closed by an import inside a function, across two packages, is reported (the
    check above would miss nothing of this shape)."""
    planted = (
        *scan_source("from serving.core import ServingCore\n", "training/fit.py"),
        *scan_source("def f():\n    from training import fit\n", "serving/core.py"),
    )
    graph = _module_graph(planted, {"training.fit", "serving.core", "training", "serving"})
    (report,) = _cycle_report(graph)
    assert "serving.core <-> training.fit" in report and "(function-local)" in report, report


def _exception_classes() -> list[tuple[str, int, str]]:
    """(file, line, class name) of every class deriving from an exception, fixed point over
    the repo's own classes by base name (a subclass of `ToolFailure` counts too)."""
    known = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)}
    known = {n for n in known if issubclass(getattr(builtins, n), BaseException)}
    classes: list[tuple[str, int, str, list[str]]] = []
    for path in _files():
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
                classes.append((rel, node.lineno, node.name, bases))
    assert len(classes) > 100, len(classes)

    def is_exc(base: str) -> bool:
        return base in known or base.endswith(("Error", "Exception"))

    while True:
        grown = known | {name for _, _, name, bases in classes if any(map(is_exc, bases))}
        if grown == known:
            break
        known = grown
    return [(f, line, name) for f, line, name, bases in classes if any(map(is_exc, bases))]


def test_exceptions_are_defined_in_errors_modules() -> None:
    """Every exception class of every package lives in that package's errors module(s)."""
    found = _exception_classes()
    assert any(f == "training/errors.py" for f, _, _ in found), "the scan found no exceptions"
    outside = [(f, line, name) for f, line, name in found if Path(f).name != "errors.py"]
    violations = {
        (f, name): f"{f}:{line} class {name} -- define it in the package's errors.py"
        for f, line, name in outside
    }
    bad = _without_pending("exceptions", violations)
    assert not bad, "\n".join(bad)
