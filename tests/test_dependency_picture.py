"""The README's package picture matches the code's imports."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dependency_picture_is_current() -> None:
    """`scripts/dependency_graph.py --check` finds the committed edge list equal to the code's
    (regenerate with `.venv/bin/python scripts/dependency_graph.py`)."""
    spec = importlib.util.spec_from_file_location(
        "dependency_graph", ROOT / "scripts" / "dependency_graph.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "run scripts/dependency_graph.py and commit the picture"
