"""The in-process peers tuned on validation, every one with the same budget (docs/protocol.md).

Each peer (EASE, item-kNN, RP3beta) has a grid of `TuningConfig.budget` settings; every
setting is fit on the fit rows (leave-last-out: train) and scored by NDCG@10 on the validation
rows (leave-last-out: each user's valid row; time-cutoff: each user's last training row, the
rest being the fit rows) with the shared history rule (`earlier_items`: every earlier fit row
of the user in split order) and seen-item mask. The best setting (ties: the first in grid
order) is then refit on train + valid and ranks the test rows (`bench.replay.methods`).
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from bench.replay.baselines import EASE, ItemKNN, ItemKNNConfig, RP3beta

__all__ = [
    "TUNED_PEERS",
    "Tuned",
    "TuningConfig",
    "best_validation_peer",
    "build_peer",
    "earlier_items",
    "select_ease_lambda",
    "tune_peer",
    "validation_frames",
]

TUNED_PEERS: tuple[str, ...] = ("ease", "item-knn", "rp3beta")
"""The in-process peers chosen on validation."""


@dataclass(frozen=True)
class TuningConfig:
    """Validation grids of the in-process peers (each the product of its axes, 48 settings)."""

    ease_lambdas: tuple[float, ...] = (100.0, 300.0, 1000.0, 3000.0)
    """EASE L2 weight lambda."""
    ease_windows: tuple[int, ...] = (3, 10, 30, 0)
    """EASE input: the latest history items that count (0 = all)."""
    ease_decays: tuple[float, ...] = (1.0, 0.9, 0.7)
    """EASE input: weight multiplier per step back (1 = binary input)."""
    knn_neighbours: tuple[int, ...] = (20, 100, 0)
    """item-kNN: neighbours kept per item (0 = all)."""
    knn_shrinks: tuple[float, ...] = (0.0, 10.0)
    """item-kNN: cosine shrink."""
    knn_windows: tuple[int, ...] = (3, 10, 30, 0)
    """item-kNN: the latest history items that vote (0 = all)."""
    knn_decays: tuple[float, ...] = (1.0, 0.8)
    """item-kNN: vote multiplier per step back."""
    rp3_alphas: tuple[float, ...] = (0.5, 1.0)
    """RP3beta: exponent of the walk's transition probabilities."""
    rp3_betas: tuple[float, ...] = (0.4, 0.6, 0.8)
    """RP3beta: popularity penalty exponent."""
    rp3_windows: tuple[int, ...] = (3, 10, 30, 0)
    """RP3beta input: the latest history items that count (0 = all; binary input on the
    MovieLens validation rows scored 0.069 at best against 0.123 with window 10, decay 0.9)."""
    rp3_decays: tuple[float, ...] = (1.0, 0.8)
    """RP3beta input: weight multiplier per step back (1 = binary input)."""
    k: int = 10
    """Cutoff of the validation NDCG."""

    def grid(self, name: str) -> list[dict[str, float]]:
        """Every setting of peer `name`, in grid order."""
        axes: dict[str, tuple[float, ...]]
        if name == "ease":
            axes = {
                "lambda": self.ease_lambdas,
                "window": self.ease_windows,
                "decay": self.ease_decays,
            }
        elif name == "item-knn":
            axes = {
                "neighbours": self.knn_neighbours,
                "shrink": self.knn_shrinks,
                "window": self.knn_windows,
                "decay": self.knn_decays,
            }
        elif name == "rp3beta":
            axes = {
                "alpha": self.rp3_alphas,
                "beta": self.rp3_betas,
                "window": self.rp3_windows,
                "decay": self.rp3_decays,
            }
        else:
            raise ValueError(f"no grid for {name!r}: {TUNED_PEERS}")
        keys = list(axes)
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*axes.values())]

    @property
    def budget(self) -> int:
        """The largest grid: the validation budget each peer gets."""
        return max(len(self.grid(n)) for n in TUNED_PEERS)


_MATRIX_KEYS = {
    "ease": ("lambda",),
    "item-knn": ("neighbours", "shrink"),
    "rp3beta": ("alpha", "beta"),
}
"""The settings that change a peer's fitted item x item matrix (the rest shape its input)."""


def build_peer(name: str, setting: dict[str, float], catalog: Iterable[int] | None = None) -> Any:
    """An unfitted peer with `setting`."""
    if name == "ease":
        return EASE(
            setting["lambda"], catalog, int(setting.get("window", 0)), setting.get("decay", 1.0)
        )
    if name == "item-knn":
        cfg = ItemKNNConfig(
            recent=int(setting["window"]),
            decay=float(setting["decay"]),
            shrink=float(setting["shrink"]),
            neighbours=int(setting["neighbours"]),
        )
        return ItemKNN(cfg, catalog)
    if name == "rp3beta":
        return RP3beta(
            setting["alpha"],
            setting["beta"],
            catalog,
            int(setting.get("window", 0)),
            setting.get("decay", 1.0),
        )
    raise ValueError(f"unknown peer {name!r}: {TUNED_PEERS}")


def _with_input(name: str, model: Any, setting: dict[str, float]) -> Any:
    """A shallow copy of a fitted `model` whose input follows `setting`'s window and decay."""
    out = copy.copy(model)
    if name in ("ease", "rp3beta"):
        out.window, out.decay = int(setting["window"]), float(setting["decay"])
    elif name == "item-knn":
        out.config = dataclasses.replace(
            model.config, recent=int(setting["window"]), decay=float(setting["decay"])
        )
    return out


@dataclass
class Tuned:
    """A peer's validation search."""

    name: str
    """Peer name."""
    setting: dict[str, float]
    """The chosen setting."""
    valid_ndcg: float
    """Its validation NDCG@k."""
    curve: list[dict[str, float]] = field(default_factory=list)
    """Every setting with its `valid_ndcg@10`, in grid order."""
    n_valid: int = 0
    """Validation rows with history (cold rows score alike under every setting)."""


def validation_ndcg(
    model: Any,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    exclude_seen: bool,
    k: int,
) -> float:
    """Mean NDCG@k of a fitted peer's lists for these (history, target) rows, history items
    masked when `exclude_seen`; ties in the peer's own order (popularity, then id)."""
    index = {int(i): r for r, i in enumerate(model.items)}
    h = np.stack([model.history_vector(x) for x in histories])  # (V, I)
    s = np.array(np.asarray(model.item_matrix.T @ h.T).T, dtype=np.float64)  # (V, I)
    if exclude_seen:
        for v, hist in enumerate(histories):
            rows = [index[int(i)] for i in hist if int(i) in index]
            s[v, rows] = -np.inf
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    total = 0.0
    for v, t in enumerate(targets):
        r = index.get(int(t))
        hit = np.flatnonzero(top[v] == r) if r is not None else []
        if len(hit) and np.isfinite(s[v, r]):  # a masked item is never in the list
            total += 1.0 / np.log2(hit[0] + 2.0)
    return total / max(len(targets), 1)


def tune_peer(
    name: str,
    fit: pl.DataFrame,
    valid: pl.DataFrame,
    cfg: TuningConfig,
    catalog: Iterable[int] | None = None,
    exclude_seen: bool = False,
) -> Tuned:
    """Grid search of peer `name` on (`fit`, `valid`): the best validation NDCG@k (module
    docstring); each item x item matrix is fit once and shared by the input settings."""
    if valid.height == 0:
        raise ValueError("empty validation frame")
    catalog = list(catalog) if catalog is not None else None
    pairs = [
        (h, int(t))
        for h, t in zip(earlier_items(fit, valid), valid["item_id"].to_list(), strict=True)
        if h
    ]
    hists, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    fitted: dict[tuple[float, ...], Any] = {}
    curve: list[dict[str, float]] = []
    for setting in cfg.grid(name):
        key = tuple(setting[k] for k in _MATRIX_KEYS[name])
        if key not in fitted:
            fitted[key] = build_peer(name, setting, catalog).fit(fit)
        model = _with_input(name, fitted[key], setting)
        score = validation_ndcg(model, hists, targets, exclude_seen, cfg.k) if hists else 0.0
        curve.append({**setting, "valid_ndcg@10": score})
    best = max(range(len(curve)), key=lambda i: (curve[i]["valid_ndcg@10"], -i))
    chosen = {k: v for k, v in curve[best].items() if k != "valid_ndcg@10"}
    return Tuned(name, chosen, curve[best]["valid_ndcg@10"], curve, len(hists))


def validation_frames(split: Any) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fit rows, validation rows) of a split: (train, valid), or with no valid rows (time
    cutoff) each user's last training row against the rest (`leave_last_out` of train)."""
    if split.valid.height:
        return split.train, split.valid
    from data.splits import leave_last_out

    inner = leave_last_out(split.train, with_valid=False)
    return inner.train, inner.test


def earlier_items(train: pl.DataFrame, rows: pl.DataFrame) -> list[list[int]]:
    """Per row of ``rows``: its user's ``train`` items that precede the row in split order,
    oldest first: the rows at or before the row's ts (a split that puts ``rows`` after
    ``train`` for each user, as leave-last-out does with its valid row, orders every
    same-second ``train`` row before it; docs/protocol.md)."""
    by_user: dict[int, tuple[list[object], list[int]]] = {}
    ordered = train.select("user_id", "item_id", "ts").sort(["user_id", "ts"], maintain_order=True)
    for u, i, t in ordered.iter_rows():
        ts_list, items = by_user.setdefault(int(u), ([], []))
        ts_list.append(t)
        items.append(int(i))
    out: list[list[int]] = []
    for u, t in rows.select("user_id", "ts").iter_rows():
        ts_list, items = by_user.get(int(u), ([], []))
        out.append(items[: bisect.bisect_right(ts_list, t)])
    return out


def select_ease_lambda(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    grid: Sequence[float] = (10, 50, 100, 250, 500, 1000, 2000),
    catalog: Iterable[int] | None = None,
    exclude_seen: bool = False,
) -> tuple[float, dict[float, float]]:
    """The ``lam`` of ``grid`` with the best validation NDCG@10, and the curve ``{lam: ndcg}``.

    EASE is fit on ``train`` (``G`` once, one solve per ``lam``); each ``valid`` row is ranked
    from its user's earlier ``train`` items (``earlier_items``; nothing excluded, unless
    ``exclude_seen``: then those history items are left out of its list, the rule of a
    benchmark that never recommends a seen item) and scored by ``training.metrics.ndcg_at_k``
    against its item. Ties between lambdas go to the first in ``grid``.
    """
    from training.metrics import ndcg_at_k

    if not grid:
        raise ValueError("empty lambda grid")
    if valid.height == 0:
        raise ValueError("empty validation frame")
    model = EASE(grid[0], catalog).fit(train)
    assert model.items is not None
    hist = np.stack([model.history_vector(h) for h in earlier_items(train, valid)])
    targets = [int(i) for i in valid["item_id"].to_list()]
    curve: dict[float, float] = {}
    for lam in grid:
        model.set_lambda(lam)
        assert model.weights is not None
        order = np.argsort(-(hist @ model.weights), axis=1, kind="stable")  # (V, I)
        if exclude_seen:
            top = [o[hist[v, o] == 0][:10] for v, o in enumerate(order)]
        else:
            top = list(order[:, :10])
        ranked = [[int(i) for i in model.items[row]] for row in top]
        curve[float(lam)] = ndcg_at_k(ranked, targets, 10)
    best = max(curve, key=lambda lam: (curve[lam], -list(curve).index(lam)))
    return best, curve


def best_validation_peer(info: dict[str, dict[str, Any]]) -> str | None:
    """The pre-declared primary comparison's peer (docs/protocol.md): of the methods whose
    `info` holds a validation NDCG@10 (the tuned peers), the highest (ties: first listed)."""
    scored = [
        (float(v["valid_ndcg@10"]), -k, m)
        for k, (m, v) in enumerate(info.items())
        if isinstance(v.get("valid_ndcg@10"), float)
    ]
    return max(scored)[2] if scored else None
