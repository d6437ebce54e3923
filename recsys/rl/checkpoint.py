"""Checkpoints that rebuild themselves: {state_dict, config, step, extra} in one torch file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(
    path: str | Path,
    state_dict: dict[str, Any],
    config: dict[str, Any],
    step: int,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write atomically (tmp file then rename). `config` is a plain dict (config_to_dict)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    torch.save(
        {"state_dict": state_dict, "config": config, "step": step, "extra": extra or {}}, tmp
    )
    tmp.replace(p)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (weights_only: no pickled code)."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    missing = {"state_dict", "config", "step"} - set(ckpt)
    if missing:
        raise ValueError(f"{path} is not a checkpoint: missing {sorted(missing)}")
    return dict(ckpt)
