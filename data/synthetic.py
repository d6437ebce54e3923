"""Synthetic Tianchi Rec-Tmall data in the official `\\u0001` format, with saved ground truth.

Writes `tianchi_2014001_rec_tmall_product.txt`, `tianchi_2014002_rec_tmall_log_part{a,b,..}.txt`,
`tianchi_2014003_rec_tmall_review.txt` (no header, `\\u0001`-delimited, ids prefixed `i`/`u` in the
log and review as in the real data) and `ground_truth.json` (see `synthetic_world.World`).

Events are generated user block by user block (about `chunk_events` each) with
`default_rng([seed, 2, block])`, so memory stays bounded for 100M events and one seed gives
byte-identical files. Per user: sessions start with probability 1/mean_session_len; inside a
session the next item is the planted transition of the previous item with probability
`p_follow`, otherwise a fresh draw: with probability `p_pref` from the user's segment
(preferred category by weight, then item by popularity x brand boost), else from the whole
catalogue by popularity. Each event's action is drawn from the funnel. A fraction
`duplicate_rate` of events is written twice (exact duplicate rows, as in the real log).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from data.schema import ACTIONS
from data.synthetic_world import REVIEW_PHRASES, World, build_world, item_titles

PRODUCT_FILE = "tianchi_2014001_rec_tmall_product.txt"
REVIEW_FILE = "tianchi_2014003_rec_tmall_review.txt"
GROUND_TRUTH_FILE = "ground_truth.json"
SEP = "\x01"
START = datetime(2014, 9, 1)
DAYS = 30


def log_file_name(part: int) -> str:
    """`tianchi_2014002_rec_tmall_log_parta.txt` for part 0, `..._partb.txt` for 1, ..."""
    return f"tianchi_2014002_rec_tmall_log_part{chr(ord('a') + part)}.txt"


@dataclass(frozen=True)
class SynthConfig:
    """Size, seed and planted structure of a synthetic dataset."""

    users: int = 2_000
    """Number of users (ids 1..users)."""
    items: int = 1_000
    """Number of items (ids 1..items)."""
    events: int = 100_000
    """Distinct events to generate (duplicated rows come on top)."""
    seed: int = 0
    """Seed: same seed and config -> byte-identical files."""
    n_categories: int = 12
    """Number of item categories."""
    n_segments: int = 8
    """Number of user segments."""
    categories_per_segment: int = 2
    """Preferred categories per segment."""
    p_pref: float = 0.85
    """Probability that a fresh item comes from the segment's preferred categories."""
    p_follow: float = 0.4
    """Probability that a non-first event of a session follows the planted transition."""
    mean_session_len: float = 6.0
    """Mean events per session (geometric)."""
    funnel: tuple[float, float, float, float] = (0.92, 0.005, 0.07, 0.005)
    """Probabilities of click, collect, cart, alipay."""
    zipf_exponent: float = 1.0
    """Item popularity is 1 / rank**zipf_exponent."""
    brand_boost: float = 4.0
    """Popularity multiplier of a segment's preferred brands."""
    null_brand_rate: float = 0.35
    """Fraction of products whose brand is written as `null`."""
    duplicate_rate: float = 0.01
    """Fraction of events written twice."""
    review_rate: float = 0.5
    """Probability that an alipay event leaves a review."""
    log_parts: int = 3
    """Number of log part files."""
    chunk_events: int = 1_000_000
    """Events per generation block (bounds memory)."""


@dataclass(frozen=True)
class GroundTruth:
    """Planted structure read back from ground_truth.json (ids are dataset ids, 1-based)."""

    funnel: dict[str, float]
    """action -> probability."""
    p_follow: float
    """Probability of following the planted transition inside a session."""
    p_pref: float
    """Probability of a fresh draw from the segment's preferred categories."""
    user_segment: dict[int, int]
    """user_id -> segment."""
    item_category: dict[int, str]
    """item_id -> category label."""
    transitions: dict[int, int]
    """item_id -> planted next item_id."""
    segments: list[dict[str, object]]
    """Per segment: categories (label -> weight) and preferred brands."""
    duplicates_planted: int
    """Rows written twice."""
    events: int
    """Distinct events."""


def load_ground_truth(path: Path) -> GroundTruth:
    """Read ground_truth.json written by `generate_synthetic`."""
    raw = json.loads(Path(path).read_text())
    return GroundTruth(
        funnel=raw["funnel"],
        p_follow=raw["p_follow"],
        p_pref=raw["p_pref"],
        user_segment={i + 1: s for i, s in enumerate(raw["user_segment"])},
        item_category={i + 1: c for i, c in enumerate(raw["item_category"])},
        transitions={i + 1: n for i, n in enumerate(raw["transitions"])},
        segments=raw["segments"],
        duplicates_planted=raw["duplicates_planted"],
        events=raw["events"],
    )


def _sample(cdf: np.ndarray, members: np.ndarray, u: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(cdf, u * cdf[-1], side="right")
    return members[np.minimum(idx, members.size - 1)]


class _Sampler:
    """Fresh-item draws: per (segment, preferred category) and per category."""

    def __init__(self, w: World, boost: float) -> None:
        self.w = w
        self.cat_members = [
            np.flatnonzero(w.item_category == c) for c in range(len(w.category_names))
        ]
        self.cat_cdf = [np.cumsum(w.item_popularity[m]) for m in self.cat_members]
        cat_mass = np.array([w.item_popularity[m].sum() for m in self.cat_members])
        self.cat_p = cat_mass / cat_mass.sum()
        self.seg_cdf: dict[tuple[int, int], np.ndarray] = {}
        for s, cats in enumerate(w.segment_categories):
            pref = set(w.segment_brands[s])
            for c in cats:
                m = self.cat_members[int(c)]
                mult = np.where(np.isin(w.item_brand[m], list(pref)), boost, 1.0)
                self.seg_cdf[(s, int(c))] = np.cumsum(w.item_popularity[m] * mult)

    def draw(self, rng: np.random.Generator, seg: np.ndarray, pref: np.ndarray) -> np.ndarray:
        n = seg.size
        out = np.empty(n, dtype=np.int64)
        k = self.w.segment_categories.shape[1]
        slot = (rng.random(n)[:, None] > np.cumsum(self.w.segment_category_weights[seg], 1)).sum(1)
        pref_cat = self.w.segment_categories[seg, np.minimum(slot, k - 1)]
        glob_cat = rng.choice(self.cat_p.size, size=n, p=self.cat_p)
        cat = np.where(pref, pref_cat, glob_cat)
        u = rng.random(n)
        for c in np.unique(cat):
            sel = cat == c
            members = self.cat_members[int(c)]
            glob_sel = sel & ~pref
            out[glob_sel] = _sample(self.cat_cdf[int(c)], members, u[glob_sel])
            for s in np.unique(seg[sel & pref]):
                ss = sel & pref & (seg == s)
                out[ss] = _sample(self.seg_cdf[(int(s), int(c))], members, u[ss])
        return out


def _block_events(
    cfg: SynthConfig, w: World, sampler: _Sampler, block: int, users: np.ndarray, counts: np.ndarray
) -> tuple[pl.DataFrame, int]:
    """Events of one user block (rows in user then time order) and the number duplicated."""
    rng = np.random.default_rng([cfg.seed, 2, block])
    n = int(counts.sum())
    user = np.repeat(users, counts)
    first = np.r_[True, user[1:] != user[:-1]]
    start = first | (rng.random(n) < 1.0 / cfg.mean_session_len)
    follow = ~start & (rng.random(n) < cfg.p_follow)
    seg = w.user_segment[user]
    item = np.empty(n, dtype=np.int64)
    fresh = ~follow
    item[fresh] = sampler.draw(rng, seg[fresh], rng.random(int(fresh.sum())) < cfg.p_pref)
    last_fresh = np.maximum.accumulate(np.where(fresh, np.arange(n), 0))
    depth = np.arange(n) - last_fresh
    for r in range(1, int(depth.max()) + 1):
        pos = np.flatnonzero(depth == r)
        item[pos] = w.transitions[item[pos - 1]]
    action = rng.choice(len(ACTIONS), size=n, p=np.asarray(cfg.funnel) / sum(cfg.funnel))
    sess = np.cumsum(start) - 1
    n_sess = int(sess[-1]) + 1
    sess_user = user[start]
    sess_start = rng.integers(0, DAYS * 86400 - 4 * 3600, n_sess)
    sess_start = sess_start[np.lexsort((sess_start, sess_user))]
    gaps = 5 + rng.exponential(55.0, n).astype(np.int64)
    gaps[start] = 0
    cum = np.cumsum(gaps)
    offset = cum - cum[np.flatnonzero(start)][sess]
    secs = np.minimum(sess_start[sess] + offset, DAYS * 86400 - 1)
    dup = ~first & (rng.random(n) < cfg.duplicate_rate)
    rows = np.repeat(np.arange(n), 1 + dup.astype(np.int64))
    df = pl.DataFrame(
        {
            "item": item[rows] + 1,
            "user": user[rows] + 1,
            "action": np.asarray(ACTIONS)[action[rows]],
            "secs": secs[rows],
            "ev": rows,
        }
    )
    return df, int(dup.sum())


def _write_log_block(df: pl.DataFrame, fh: object) -> None:
    out = df.select(
        pl.format("i{}", "item").alias("i"),
        pl.format("u{}", "user").alias("u"),
        "action",
        (pl.lit(START) + pl.duration(seconds=pl.col("secs"))).dt.strftime("%Y-%m-%d %H:%M:%S"),
    )
    out.write_csv(fh, separator=SEP, include_header=False, quote_style="never")  # type: ignore[arg-type]


def generate_synthetic(cfg: SynthConfig, out_dir: Path) -> Path:
    """Write a synthetic Tianchi-format dataset and its ground truth into `out_dir`; return it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    w = build_world(
        seed=cfg.seed,
        users=cfg.users,
        items=cfg.items,
        n_categories=cfg.n_categories,
        n_segments=cfg.n_segments,
        categories_per_segment=cfg.categories_per_segment,
        zipf_exponent=cfg.zipf_exponent,
        null_brand_rate=cfg.null_brand_rate,
    )
    _write_products(cfg, w, out_dir / PRODUCT_FILE)
    sampler = _Sampler(w, cfg.brand_boost)
    counts = np.random.default_rng([cfg.seed, 3]).multinomial(
        cfg.events, w.user_activity / w.user_activity.sum()
    )
    cum = np.cumsum(counts)
    block_of_user = np.minimum(cum // max(1, cfg.chunk_events), cum[-1] // max(1, cfg.chunk_events))
    edges = np.r_[0, np.flatnonzero(np.diff(block_of_user)) + 1, cfg.users]
    n_blocks = edges.size - 1
    dups = 0
    review_rng = np.random.default_rng([cfg.seed, 4])
    handles = [(out_dir / log_file_name(p)).open("wb") for p in range(cfg.log_parts)]
    with (out_dir / REVIEW_FILE).open("wb") as review_fh:
        try:
            for b in range(n_blocks):
                users = np.arange(edges[b], edges[b + 1])
                c = counts[users]
                users, c = users[c > 0], c[c > 0]
                if users.size == 0:
                    continue
                df, d = _block_events(cfg, w, sampler, b, users, c)
                dups += d
                first_event = int(cum[edges[b] - 1]) if edges[b] > 0 else 0
                part = (pl.col("ev") + first_event) * cfg.log_parts // max(1, cfg.events)
                df = df.with_columns(part=part.clip(0, cfg.log_parts - 1))
                for (p,), sub in df.group_by("part", maintain_order=True):
                    _write_log_block(sub, handles[int(p)])  # type: ignore[call-overload]
                _write_reviews(cfg, df, review_rng, review_fh)
        finally:
            for h in handles:
                h.close()
    _write_ground_truth(cfg, w, dups, out_dir / GROUND_TRUTH_FILE)
    return out_dir


def _write_products(cfg: SynthConfig, w: World, path: Path) -> None:
    with path.open("wb") as fh:
        for lo in range(0, cfg.items, 200_000):
            hi = min(cfg.items, lo + 200_000)
            idx = np.arange(lo, hi)
            df = pl.DataFrame(
                {
                    "item_id": (idx + 1).astype(str),
                    "title": item_titles(w, cfg.seed, lo, hi),
                    "pict_url": [f"http://img.example/{i + 1}.jpg" for i in idx],
                    "category": np.asarray(w.category_names)[w.item_category[idx]],
                    "brand_id": np.where(
                        w.brand_shown[idx], np.char.add("b", w.item_brand[idx].astype(str)), "null"
                    ),
                    "seller_id": np.char.add("s", w.item_seller[idx].astype(str)),
                }
            )
            df.write_csv(fh, separator=SEP, include_header=False, quote_style="never")


def _write_reviews(
    cfg: SynthConfig, df: pl.DataFrame, rng: np.random.Generator, fh: object
) -> None:
    buys = df.filter(pl.col("action") == "alipay")
    if buys.height == 0:
        return
    buys = buys.filter(pl.Series(rng.random(buys.height) < cfg.review_rate))
    n = buys.height
    phrases = np.asarray(REVIEW_PHRASES)
    text = [" ， ".join(phrases[rng.choice(phrases.size, 2, replace=False)]) for _ in range(n)]
    delay = rng.integers(3600, 3 * 86400, n)
    out = buys.with_columns(
        fb=pl.Series(text, dtype=pl.String),
        secs=pl.min_horizontal(pl.col("secs") + pl.Series(delay), pl.lit(DAYS * 86400 - 1)),
    ).select(
        pl.format("i{}", "item").alias("i"),
        pl.format("u{}", "user").alias("u"),
        "fb",
        (pl.lit(START) + pl.duration(seconds=pl.col("secs"))).dt.strftime("%Y-%m-%d %H:%M:%S"),
        pl.lit("").alias("pic"),
    )
    out.write_csv(fh, separator=SEP, include_header=False, quote_style="never")  # type: ignore[arg-type]


def _write_ground_truth(cfg: SynthConfig, w: World, dups: int, path: Path) -> None:
    names = w.category_names
    truth = {
        "config": asdict(cfg),
        "funnel": dict(zip(ACTIONS, (p / sum(cfg.funnel) for p in cfg.funnel), strict=True)),
        "p_follow": cfg.p_follow,
        "p_pref": cfg.p_pref,
        "events": cfg.events,
        "duplicates_planted": dups,
        "segments": [
            {
                "segment": s,
                "categories": {
                    names[int(c)]: float(wt)
                    for c, wt in zip(
                        w.segment_categories[s], w.segment_category_weights[s], strict=True
                    )
                },
                "brands": [f"b{b}" for b in w.segment_brands[s]],
            }
            for s in range(len(w.segment_brands))
        ],
        "user_segment": w.user_segment.tolist(),
        "item_category": [names[c] for c in w.item_category.tolist()],
        "transitions": (w.transitions + 1).tolist(),
    }
    path.write_text(json.dumps(truth, ensure_ascii=False))
