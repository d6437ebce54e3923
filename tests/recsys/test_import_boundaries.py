"""The core package keeps its dependencies pointing one way (STYLE.md rule 1)."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = [
    "recsys",
    "recsys.records",
    "recsys.config",
    "recsys.memory.case_bank",
    "recsys.rl.learner",
    "recsys.rl.policy",
    "recsys.rl.losses",
    "recsys.rl.replay",
    "recsys.rec.state_encoder",
    "recsys.memory.case_encoder",
    "recsys.rec.candidates",
    "recsys.llm.ranker",
    "recsys.llm.prompts",
]
FORBIDDEN = ["fastapi", "mlflow", "mcp", "training", "serving", "data", "uvicorn"]


def test_core_imports_no_web_tracking_or_upper_layers() -> None:
    """Importing the core loads none of fastapi, mlflow, mcp, training, serving or data."""
    code = (
        "import importlib, sys\n"
        f"for m in {CORE_MODULES!r}: importlib.import_module(m)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "", f"core pulled in: {out.stdout.strip()}"


def test_faiss_and_transformers_have_one_importer_each() -> None:
    """Only recsys/memory/case_bank.py imports faiss; only recsys/llm/ imports transformers."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    faiss_users, hf_users = [], []
    for pkg in ("recsys", "training", "serving", "data", "memento"):
        for path in (root / pkg).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            rel = path.relative_to(root).as_posix()
            if "import faiss" in text:
                faiss_users.append(rel)
            if "import transformers" in text or "from transformers" in text:
                hf_users.append(rel)
    assert faiss_users == ["recsys/memory/case_bank.py"], faiss_users
    assert hf_users and all(p.startswith("recsys/llm/") for p in hf_users), hf_users
