"""`LearnerPart`: the learner's part of a `ModelBundle` (its `learner.pt`), and the one format
in which learner weights travel (the shared learner's versions, the Ray learner actor's
broadcasts, the agent memory's `learner.pt`).

One torch file of tensors and plain data, read with `torch.load(..., weights_only=True)` (no
pickled code):

    {"config": LearnerConfig as a plain dict (`config_to_dict`), "step": int,
     "state_dict": {"dims": {"state_dim", "key_dim"},
                    "q", "q_target": twin Q state dicts, "log_alpha": 0-d tensor,
                    "tabular": {case id: Q},
                    "opt", "alpha_opt": Adam state dicts (only with the optimiser state)}}

With the optimiser state it is a checkpoint: training continues exactly where it stopped (the
bundle's `learner.pt`, the end of a distributed training pass, the shared learner's own
checkpoint). Without it, it is everything a replay actor acts and learns with
(`Learner.apply_part` then keeps the receiver's own optimiser state). A publication
(`publication()`, the shared learner's per-version weights) also leaves out `q_target`: acting
reads only `q` (and alpha), so a replica keeps its own target network and each version carries
half the tensors. Files written before the optimiser state was optional have the same layout
and load unchanged.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from recsys.config import LearnerConfig, config_from_dict, config_to_dict
from recsys.errors import BundleError

__all__ = ["OPTIMISER_KEYS", "LearnerPart"]

OPTIMISER_KEYS = ("opt", "alpha_opt")
"""State-dict entries that hold optimiser state (Adam moments of Q and of the temperature)."""
_WEIGHT_KEYS = ("q", "log_alpha", "tabular")
"""Entries every part has (`q_target` too, except in a publication)."""


@dataclass(frozen=True)
class LearnerPart:
    """A learner's configuration, sizes, step and weights (+ optimiser state when kept)."""

    config: LearnerConfig
    """The learner's settings (mode, Q network, policy, ...)."""
    state_dim: int
    """Width of the state vectors it scores."""
    key_dim: int
    """Width of the case keys it scores."""
    step: int
    """Gradient steps taken."""
    weights: dict[str, Any]
    """`q`, `q_target` (state dicts; no `q_target` in a publication), `log_alpha` (0-d tensor),
    `tabular` ({case id: Q})."""
    optimiser: dict[str, Any] | None = None
    """`opt`, `alpha_opt` (Adam state dicts), or None in a publication."""

    def __post_init__(self) -> None:
        missing = [k for k in _WEIGHT_KEYS if k not in self.weights]
        if missing:
            raise BundleError(f"learner part without {', '.join(missing)}")
        if self.optimiser is not None and set(self.optimiser) != set(OPTIMISER_KEYS):
            raise BundleError(f"learner part optimiser state has {sorted(self.optimiser)}")

    def without_optimiser(self) -> LearnerPart:
        """This part without the optimiser state (same weights)."""
        return replace(self, optimiser=None)

    def publication(self) -> LearnerPart:
        """What an acting copy needs: `q`, `log_alpha` and `tabular`, no target network and
        no optimiser state (`Learner.apply_part` keeps the receiver's own)."""
        weights = {k: v for k, v in self.weights.items() if k != "q_target"}
        return replace(self, weights=weights, optimiser=None)

    def q_digest(self) -> str:
        """Fingerprint of the online Q network's weights (changes with every update)."""
        h = hashlib.sha1()
        for t in self.weights["q"].values():
            h.update(t.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    # --- bytes and files ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The torch file (module docstring) as bytes."""
        state = {
            **self.weights,
            **(self.optimiser or {}),
            "dims": {"state_dim": self.state_dim, "key_dim": self.key_dim},
        }
        buf = io.BytesIO()
        torch.save(
            {"state_dict": state, "config": config_to_dict(self.config), "step": self.step}, buf
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, what: str = "learner part") -> LearnerPart:
        """Inverse of `to_bytes` (tensors and plain data only); `BundleError` when `blob` is
        not a learner part (`what` names it in the message)."""
        try:
            raw = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            raise BundleError(f"{what} is not a learner part: {exc}") from exc
        if not isinstance(raw, dict):
            raise BundleError(f"{what} is not a learner part: a {type(raw).__name__}")
        missing = {"state_dict", "config", "step"} - set(raw)
        if missing:
            raise BundleError(f"{what} is not a learner part: missing {sorted(missing)}")
        sd = dict(raw["state_dict"])
        dims = sd.pop("dims")
        opt = {k: sd.pop(k) for k in OPTIMISER_KEYS if k in sd}
        return cls(
            config_from_dict(LearnerConfig, raw["config"]),
            int(dims["state_dim"]),
            int(dims["key_dim"]),
            int(raw["step"]),
            sd,
            opt or None,
        )

    def save(self, path: str | Path) -> Path:
        """Write to `path` atomically (a temporary file, then a rename); returns `path`."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> LearnerPart:
        """Read a part written by `save` (or a bundle's `learner.pt`)."""
        p = Path(path)
        if not p.is_file():
            raise BundleError(f"no learner part at {p}")
        return cls.from_bytes(p.read_bytes(), str(p))
