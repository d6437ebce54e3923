"""Play a probed run's cross-model stream to other settings of the cross model.

`bench.online.score_parts` records what the served cross model (`recsys.rec.item_crosses`)
saw during one soft-q run, in order: each warm decision's pool and history with the pool
items' exact values under the simulator, each training step (shown items, history, rewards,
positions) and each restart at a drift alarm. This module rebuilds a cross model per setting
and plays the stream to it: at each decision it ranks the pool by r(s, item) alone and values
the top `list_size` items with the simulator's exact values (theta[k] * value, the
benchmark's `expected` figure); at each step it learns; at each restart it restarts. The
setting the run served with, played the same way, gives the `r` column of `score_parts` again.

The decisions, histories and shown lists are the served run's, so a setting is judged on the
states and the data the served model produced (a screen: a setting that ranks better here
still has to win a run of its own, where its lists shape what it learns from). Usage:

    python -m bench.online.score_parts --simulator planted --seed 5 --interactions 6000 --out DIR
    python -m bench.online.cross_replay DIR/crosses.jsonl.gz --setting lr=0.03 --setting power_t=.25

prints the mean value of each setting's top 10 per window around the taste shift, beside the
served setting's and the best list inside the pool; `--fit-values` adds the served setting
trained on every pool item's exact value instead of the run's rewards (what its features
could rank with a perfect signal).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.online.score_parts import read_stream, span_means
from recsys.rec.item_crosses import ItemCrosses, crosses_for

__all__ = ["SETTINGS", "parse_setting", "replay", "window_means"]

SETTINGS = ("lr", "history", "power_t", "last_weight", "mix", "target", "position")
"""The cross model's settings a replay may change (`ItemCrosses` arguments)."""


def parse_setting(text: str) -> dict[str, float | str]:
    """`"lr=0.03,target=click"` -> {"lr": 0.03, "target": "click"} (`SETTINGS` names only;
    numbers read as floats)."""
    out: dict[str, float | str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in SETTINGS:
            raise ValueError(f"{part!r}: expected NAME=VALUE with NAME one of {SETTINGS}")
        try:
            out[name] = float(value)
        except ValueError:
            out[name] = value.strip()
    return out


def _served() -> dict[str, float | str]:
    """The online preset's cross-model settings (what `score_parts` runs)."""
    from recsys.presets import online

    cx = crosses_for(online("items").recommend)
    assert cx is not None, "the online preset has a cross model"
    return {name: getattr(cx, name) for name in SETTINGS}


def replay(
    events: Sequence[Mapping[str, Any]],
    setting: Mapping[str, float | str],
    *,
    fit_values: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, value of r's top of the pool, value of the best list inside it) per decision of the
    stream (a list as long as the simulator's examination, `theta` of the catalogue event), for
    a cross model built with `setting` (unnamed settings: `ItemCrosses`' defaults).

    `fit_values`: a diagnostic, not a method: the model learns, after each decision, every pool
    item's exact value at the first position (full information, no noise) instead of the run's
    shown items and rewards; how well its features can rank once the signal is perfect."""
    if not events or events[0]["kind"] != "catalogue":
        raise ValueError("a stream starts with its catalogue")
    kw: dict[str, Any] = dict(setting)
    for name in ("history", "mix"):
        if name in kw:
            kw[name] = int(kw[name])
    cx = ItemCrosses(**kw)
    ids, titles = events[0]["ids"], events[0]["titles"]
    tok = {i: cx.tokens(i, t) for i, t in zip(ids, titles, strict=True)}
    theta = np.asarray(events[0]["theta"], np.float64)
    ts, got, best = [], [], []
    for e in events[1:]:
        hist = [tok[i] for i in e.get("hist", ()) if i in tok]
        if e["kind"] == "score":
            vals = np.asarray(e["values"], np.float64)
            r = cx.scores([tok[i] for i in e["pool"]], hist)
            k = min(len(theta), len(vals))
            top = np.argsort(-r, kind="stable")[:k]
            ts.append(e["t"])
            got.append(float((theta[:k] * vals[top]).sum()))
            best.append(float((theta[:k] * np.sort(vals)[::-1][:k]).sum()))
            if fit_values:
                pool = [tok[i] for i in e["pool"]]
                cx.update(pool, hist, vals.astype(np.float32), np.zeros(len(pool), np.int64))
        elif e["kind"] == "learn" and not fit_values:
            cx.update(
                [tok[i] for i in e["items"]],
                hist,
                np.asarray(e["rewards"], np.float32),
                np.asarray(e["positions"], np.int64),
            )
        elif e["kind"] == "restart":
            cx.restart()
    return np.asarray(ts, np.int64), np.asarray(got), np.asarray(best)


def window_means(
    t: np.ndarray, values: dict[str, np.ndarray], shift: int, n: int
) -> list[tuple[str, dict[str, float]]]:
    """The mean of each named series per window: the first 1,000 decisions, the 1,000 before
    the shift, 0-500 and 500-1,500 after it, and the last 20% of the run (empty windows left
    out; `score_parts.span_means`)."""
    spans = [
        ("first 1,000", 0, 1000),
        ("before -1,000..0", shift - 1000, shift),
        ("after 0..500", shift, shift + 500),
        ("after 500..1,500", shift + 500, shift + 1500),
        ("last 20%", int(0.8 * n), n),
    ]
    return span_means(t, values, spans)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.online.cross_replay` (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stream", type=Path, help="DIR/crosses.jsonl.gz of bench.online.score_parts")
    ap.add_argument(
        "--setting",
        action="append",
        default=[],
        help=f"NAME=VALUE[,NAME=VALUE] of {SETTINGS} over the served ones (repeatable)",
    )
    ap.add_argument(
        "--fit-values",
        action="store_true",
        help="also the served setting fitted on the pools' exact values (a diagnostic: "
        "the features' reach with a perfect signal)",
    )
    a = ap.parse_args(argv)
    meta, events = read_stream(a.stream)
    served = _served()
    named = {"served": served} | {s: served | parse_setting(s) for s in a.setting}
    series: dict[str, np.ndarray] = {}
    t = np.zeros(0, np.int64)
    for name, setting in named.items():
        t, got, best = replay(events, setting)
        series[name] = got
    if a.fit_values:
        series["served fit on values"] = replay(events, served, fit_values=True)[1]
    series["best in pool"] = best
    head = f"{meta.get('simulator')} seed {meta.get('seed')}"
    print(f"{head}: value of the top of each pool by the cross model's r alone")
    width = max(len(k) for k in series)
    rows = window_means(t, series, int(meta["shift"]), int(meta["interactions"]))
    print(f"{'setting':{width}s} " + " ".join(f"{label:>17s}" for label, _ in rows))
    for k in series:
        print(f"{k:{width}s} " + " ".join(f"{m[k]:17.3f}" for _, m in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
