"""`LearnerPart`: the learner's part of a `ModelBundle` (its `learner.pt`), and the one format
in which learner weights travel (the shared learner's versions, the Ray learner actor's
broadcasts, the agent memory's `learner.pt`).

One torch file of tensors and plain data, read with `torch.load(..., weights_only=True)` (no
pickled code):

    {"config": LearnerConfig as a plain dict (`config_to_dict`), "step": int,
     "state_dict": {"dims": {"state_dim", "key_dim"},
                    "q", "q_target": twin Q state dicts, "log_alpha": 0-d tensor,
                    "tabular": {case id: Q},
                    "opt", "alpha_opt": Adam state dicts (only with the optimiser state)},
     "crosses": the items scorer's cross model, sparse (`recsys.rec.item_crosses.CrossesState`;
                only when the model has one): {"bits", "history": int, "index": (N,) int32
                (absent: the tables are dense), "w": (N,) float32, "pos": (P,) float32,
                "g2": (N,), "pos_g2": (P,) float32 AdaGrad accumulators (only with the
                optimiser state)}}

With the optimiser state it is a checkpoint: training continues exactly where it stopped (the
bundle's `learner.pt`, the end of a distributed training pass, the shared learner's own
checkpoint). Without it, it is everything a replay actor acts and learns with
(`Learner.apply_part` then keeps the receiver's own optimiser state). A publication
(`publication()`, the shared learner's per-version weights) also leaves out `q_target`: acting
reads only `q` (and alpha), so a replica keeps its own target network and each version carries
half the tensors. The cross model travels with the learner it is added to (a replica scores
with both): a publication carries its non-zero weights and position biases, a checkpoint its
AdaGrad accumulators too. Files written before the optimiser state was optional, or before the
cross model travelled (no "crosses": the receiver keeps its own), load unchanged.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys.config import LearnerConfig, config_from_dict, config_to_dict
from recsys.errors import BundleError
from recsys.rec.item_crosses import CrossesState

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
    crosses: CrossesState | None = None
    """The items scorer's cross model (with its AdaGrad state in a checkpoint), or None: the
    model has none, or the part was written before it travelled."""

    def __post_init__(self) -> None:
        missing = [k for k in _WEIGHT_KEYS if k not in self.weights]
        if missing:
            raise BundleError(f"learner part without {', '.join(missing)}")
        if self.optimiser is not None and set(self.optimiser) != set(OPTIMISER_KEYS):
            raise BundleError(f"learner part optimiser state has {sorted(self.optimiser)}")

    def without_optimiser(self) -> LearnerPart:
        """This part without the optimiser state (same weights)."""
        crosses = None if self.crosses is None else self.crosses.without_optimiser()
        return replace(self, optimiser=None, crosses=crosses)

    def publication(self) -> LearnerPart:
        """What an acting copy needs: `q`, `log_alpha` and `tabular`, no target network and
        no optimiser state (`Learner.apply_part` keeps the receiver's own)."""
        weights = {k: v for k, v in self.weights.items() if k != "q_target"}
        return replace(self.without_optimiser(), weights=weights)

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
        raw = {"state_dict": state, "config": config_to_dict(self.config), "step": self.step}
        if self.crosses is not None:
            raw["crosses"] = _crosses_file(self.crosses)
        buf = io.BytesIO()
        torch.save(raw, buf)
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
            _crosses_read(raw["crosses"], what) if "crosses" in raw else None,
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


def _crosses_file(c: CrossesState) -> dict[str, Any]:
    """The cross model's section of the file (module docstring): tensors and ints."""
    out: dict[str, Any] = {"bits": c.bits, "history": c.history}
    for name in ("index", "w", "pos", "g2", "pos_g2"):
        arr = getattr(c, name)
        if arr is not None:
            out[name] = torch.from_numpy(arr)
    return out


def _crosses_read(raw: dict[str, Any], what: str) -> CrossesState:
    """Inverse of `_crosses_file`; `BundleError` when a field is missing."""
    missing = {"bits", "history", "w", "pos"} - set(raw)
    if missing:
        raise BundleError(f"{what}: cross model without {sorted(missing)}")
    arr = {k: v.numpy() for k, v in raw.items() if isinstance(v, torch.Tensor)}
    return CrossesState(
        int(raw["bits"]),
        int(raw["history"]),
        arr["index"].astype(np.int32) if "index" in arr else None,
        arr["w"].astype(np.float32),
        arr["pos"].astype(np.float32),
        arr.get("g2"),
        arr.get("pos_g2"),
    )
