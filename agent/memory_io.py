"""Inspect, export and import a saved agent memory (`AgentMemory.save` folders).

A memory folder is made of two `recsys.bundle.ModelBundle` parts in the bundle's layout:
`bank/` (the `CaseBank`) and `learner.pt` (the `LearnerPart`, read with `weights_only=True`),
with `memory.json` (mode, encoder name and width, case count) in the place of `bundle.json`.

Export writes one JSON line per case (`case_id, payload, reward, ts, visits, utility`): plain
data, independent of the encoder. Import re-embeds each case's task with the importing
encoder, so a bank moves between encoders (the learner is not carried over: its Q was trained
on the old keys).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from agent.errors import MemoryMismatchError
from agent.memory import AgentMemory, MemoryConfig, MemoryMode, read_memory_meta
from recsys.bundle import LearnerPart
from recsys.memory.case_bank import CaseBank
from recsys.memory.text_encoder import TextEncoder

__all__ = ["export_cases", "import_cases", "inspect_memory"]


def _bank(folder: Path) -> CaseBank:
    read_memory_meta(folder)
    return CaseBank.load(folder / "bank")


def _learner_info(folder: Path) -> dict[str, Any] | None:
    """Mode and gradient steps of the memory's learner part (None when it has none)."""
    path = folder / "learner.pt"
    if not path.is_file():
        return None
    part = LearnerPart.load(path)
    return {"mode": part.config.mode, "step": part.step}


def inspect_memory(folder: Path, top: int = 10) -> dict[str, Any]:
    """Counts by outcome, the learner part's mode and steps, and the `top` cases by utility
    (credited reward) then visits."""
    meta = read_memory_meta(folder)
    bank = _bank(folder)
    try:
        cases = [bank.get(i) for i in bank.ids()]
    finally:
        bank.close()
    outcomes = Counter(str(c.payload.get("outcome", "?")) for c in cases)
    ranked = sorted(cases, key=lambda c: (c.utility, c.visits), reverse=True)[:top]
    return {
        **meta,
        "cases": len(cases),
        "outcomes": dict(outcomes),
        "mean_reward": round(sum(c.reward for c in cases) / len(cases), 4) if cases else None,
        "chosen_at_least_once": sum(c.visits > 0 for c in cases),
        "learner": _learner_info(folder),
        "top": [
            {
                "case_id": c.case_id,
                "task": str(c.payload.get("task", ""))[:120],
                "outcome": c.payload.get("outcome"),
                "answer": c.payload.get("answer"),
                "reward": c.reward,
                "visits": c.visits,
                "utility": round(c.utility, 4),
            }
            for c in ranked
        ],
    }


def export_cases(folder: Path, out: Path) -> int:
    """Write every case of the memory at `folder` to the JSONL file `out`; returns the count."""
    bank = _bank(folder)
    try:
        cases = [bank.get(i) for i in bank.ids()]
    finally:
        bank.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for c in cases:
            row = {
                "case_id": c.case_id,
                "payload": c.payload,
                "reward": c.reward,
                "ts": c.ts,
                "visits": c.visits,
                "utility": c.utility,
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(cases)


def import_cases(src: Path, folder: Path, encoder: TextEncoder, mode: MemoryMode) -> int:
    """Add the cases of the JSONL export `src` to the memory at `folder` (created when absent,
    with `encoder`); returns the number added. Malformed lines raise `MemoryMismatchError`
    naming the line, before anything is written."""
    rows = []
    for i, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            payload = dict(row["payload"])
            str(payload["task"])
            float(payload["reward"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MemoryMismatchError(f"{src} line {i}: not an exported case ({exc!r})") from exc
        rows.append((payload, float(row.get("ts", 0.0))))
    memory = AgentMemory(encoder, MemoryConfig(mode=mode))
    if (folder / "memory.json").exists():
        memory.load(folder)
    for payload, ts in rows:
        memory.write(memory.embed(str(payload["task"])), payload, ts=ts)
    memory.save(folder)
    return len(rows)
