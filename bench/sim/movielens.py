"""A semi-synthetic MovieLens-100K simulator: real users and movies, a fitted response model.

Assumptions (the response model is fitted once on ALL 100,000 ratings, `fit_seed` fixes it):
- a rating is recovered from the canonical action (`data.movielens.RATING_TO_ACTION`):
  alipay -> 5, cart -> 4, collect -> 3, click -> 1.5 (ratings 1 and 2 share an action);
- liking: a biased matrix factorisation r^(u, i) = mu + b_u + b_i + p_u . q_i (rank `rank`,
  L2 `l2`, `als_epochs` sweeps of alternating least squares), clipped to [1, 5];
- watch propensity: P(u rated i at all) from a logistic regression (IRLS) on two features,
  the rank-`rank` projection of the binary rated matrix (PureSVD, a seeded randomized SVD) and
  the item's log-popularity z-score; w(u, i) is its logit;
- attraction a(u, i) = sigmoid(bias + w_watch * w + w_like * (r^ - mu) + trend(genres of i)
  + w_seq * max(0, cos(q_i, q_last)) - w_seen * seen): the sequential term is the latent
  similarity of i to the user's last acted movie (taste momentum: what one just watched makes
  similar movies more appealing); `seen` marks movies in the user's history (no re-watching);
- a shown movie at position k is examined with probability theta[k] = 1 / (k + 1)^eta and
  clicked with probability a (position-based model); a click ends at a funnel action
  (`bench.sim.base.draw_funnel`) with P(alipay | click) = P(rating 5 | r^), a logistic
  calibration fitted on the observed ratings, and an exponential dwell whose mean
  (`dwell_base` + `dwell_gain` * a seconds) grows with a;
- users are the 943 real users, arriving in a seeded random order (a new order per pass, a
  returning real user starts afresh under a new id); a newcomer's history is their first
  `warmup_events` real ratings in time order (real gaps compressed to one second); the rest
  of their real history never enters the state; arrivals and departures follow `planted`;
- `shift()` (a genre trend): `trend_genres` genres drawn with the seed get +`w_trend` on the
  logit of every movie having one of them, every other movie -`w_untrend`, from now on.
The best list for a state is exact: movies sorted by a * E[value | click].

Simulator gap (what is not real):
- MovieLens logs ratings, not impressions: nobody knows what users were shown and ignored, so
  "attraction" is a modelled mix of "would rate it" and "would like it", not a click rate;
- a rating is not a click and the funnel is not the rating scale: below alipay the funnel
  (cart / collect / click shares) is the fixed one of `bench.sim.base`, not rating 4 / 3;
- the MF extrapolates to the ~94% of unrated (user, movie) pairs; its errors are the truth
  here, and it has seen every rating, so a real user's later movies are the simulator's
  favourites (the model half-memorises them);
- dwell times, position bias, the sequential boost, departures and trends are invented;
- tastes do not drift within a user except through `seen`, the last movie and `shift()`;
- the MovieLens catalogue is 1990s movies rated in 1997-98; no new movies ever arrive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from bench.sim.base import PoolUser, UserPoolSimulator
from bench.sim.streams import SimStreams
from data.movielens import fetch_movielens_100k
from data.schema import INTERACTIONS_FILE, ITEMS_FILE

ACTION_TO_RATING = {"click": 1.5, "collect": 3.0, "cart": 4.0, "alipay": 5.0}
"""Canonical action -> the MovieLens rating it stands for (1 and 2 both map to click)."""


@dataclass(frozen=True)
class MovieLensConfig:
    """The fit of the response model, its weights and the population dynamics."""

    rank: int = 16
    """Latent dimension of the rating MF and of the binary (watch) projection."""
    l2: float = 5.0
    """Ridge penalty of every ALS least-squares solve (factors and biases)."""
    als_epochs: int = 8
    """Alternating least-squares sweeps (users then items)."""
    fit_seed: int = 0
    """Seed of the MF initialisation and the randomized SVD (the same world for every seed)."""
    active: int = 200
    """Users present at any time."""
    list_size: int = 10
    """Movies per shown list."""
    eta: float = 0.8
    """Position bias: theta[k] = 1 / (k + 1)^eta."""
    bias: float = -1.5
    """Attraction logit of a movie with watch logit 0 and an average predicted rating."""
    w_watch: float = 0.5
    """Logit weight of the watch propensity logit w(u, i)."""
    w_like: float = 1.0
    """Logit weight per star of predicted rating above the mean rating."""
    w_seq: float = 1.0
    """Logit weight of the (positive) latent cosine to the user's last acted movie."""
    w_seen: float = 8.0
    """Logit penalty of a movie already in the user's history."""
    trend_genres: int = 3
    """Genres boosted by each `shift()`."""
    w_trend: float = 1.0
    """Logit bonus of a movie having a trending genre."""
    w_untrend: float = 0.2
    """Logit penalty of every other movie after a shift."""
    dwell_base: float = 15.0
    """Mean dwell seconds of a click at attraction 0."""
    dwell_gain: float = 120.0
    """Extra mean dwell seconds per unit of attraction."""
    leave: float = 0.02
    """Departure probability after a decision with an action."""
    leave_idle: float = 0.08
    """Departure probability after a decision with no action."""
    warmup_events: int = 10
    """Real ratings (oldest first) in a newcomer's history."""
    step_seconds: float = 60.0
    """Simulator clock advance per decision."""


@dataclass(frozen=True)
class MovieLensFit:
    """The fitted response model; arrays are read-only and shared by simulators."""

    ids: list[str]
    """Item ids (items.parquet order)."""
    titles: list[str]
    """Titles with release year."""
    genres: list[list[str]]
    """Genres per item."""
    mu: float
    """Mean observed rating."""
    rating: np.ndarray
    """(users, items) predicted rating r^, clipped to [1, 5]."""
    watch: np.ndarray
    """(users, items) logit of P(rated at all)."""
    buy: np.ndarray
    """(users, items) P(rating 5 | r^): P(alipay | click)."""
    item_dirs: np.ndarray
    """(items, rank) unit item factors q_i / |q_i| (cosine similarity)."""
    user_events: list[tuple[list[int], list[str]]]
    """Per real user: item rows and actions of every rating, oldest first."""


def _ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """argmin |[x, 1] b - y|^2 + l2 |b|^2: (k + 1,) factors then bias."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    return np.linalg.solve(xb.T @ xb + l2 * np.eye(xb.shape[1]), xb.T @ y)


def _groups(keys: np.ndarray, n: int) -> list[np.ndarray]:
    """Positions of each key 0..n-1 in `keys` (empty arrays for absent keys)."""
    bounds = np.cumsum(np.bincount(keys, minlength=n))[:-1]
    return np.split(np.argsort(keys, kind="stable"), bounds)


def _als(
    u: np.ndarray, i: np.ndarray, r: np.ndarray, shape: tuple[int, int], cfg: MovieLensConfig
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Biased MF by ALS (Koren, Bell & Volinsky 2009, eq. 5): (mu, b_u, b_i, P, Q).
    u, i, r: (n,) user rows, item rows, ratings; P: (users, rank), Q: (items, rank)."""
    rng = np.random.default_rng([cfg.fit_seed, 1])
    k = cfg.rank
    p, q = rng.normal(0, 0.1, (shape[0], k)), rng.normal(0, 0.1, (shape[1], k))
    bu, bi, mu = np.zeros(shape[0]), np.zeros(shape[1]), float(r.mean())
    by_u = _groups(u, shape[0])
    by_i = _groups(i, shape[1])
    for _ in range(cfg.als_epochs):
        for x, e in enumerate(by_u):
            s = _ridge(q[i[e]], r[e] - mu - bi[i[e]], cfg.l2)
            p[x], bu[x] = s[:k], s[k]
        for x, e in enumerate(by_i):
            if len(e):
                s = _ridge(p[u[e]], r[e] - mu - bu[u[e]], cfg.l2)
                q[x], bi[x] = s[:k], s[k]
    return mu, bu, bi, p, q


def _low_rank(b: np.ndarray, k: int, rng: np.random.Generator, power: int = 4) -> np.ndarray:
    """Rank-k projection U_k U_k^T b of `b` by a randomized SVD (Halko et al. 2011, alg. 4.4)."""
    y = b @ rng.standard_normal((b.shape[1], k + 10))
    for _ in range(power):
        y = b @ (b.T @ np.linalg.qr(y)[0])
    basis = np.linalg.qr(y)[0]
    small = np.linalg.svd(basis.T @ b, full_matrices=False)[0][:, :k]
    proj = basis @ small
    out: np.ndarray = proj @ (proj.T @ b)
    return out


def _logistic(x: np.ndarray, y: np.ndarray, iters: int = 10) -> np.ndarray:
    """Logistic-regression weights by IRLS (Newton); x: (n, d) with a bias column, y: (n,)."""
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        h = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(x.shape[1])
        w = w + np.linalg.solve(h, x.T @ (y - p))
    return w


@lru_cache(maxsize=2)
def fit_movielens(data_dir: Path, cfg: MovieLensConfig) -> MovieLensFit:
    """Fit the response model on every rating in a canonical ML-100K folder (~2 s; cached on
    the folder and the fit fields of `cfg`: rank, l2, als_epochs, fit_seed)."""
    inter = pl.read_parquet(data_dir / INTERACTIONS_FILE).sort("ts", maintain_order=True)
    items = pl.read_parquet(data_dir / ITEMS_FILE)
    item_ids = items["item_id"].to_numpy()
    row_of = {int(x): k for k, x in enumerate(item_ids)}
    users, u = np.unique(inter["user_id"].to_numpy(), return_inverse=True)
    i = np.array([row_of[int(x)] for x in inter["item_id"].to_list()], np.int64)
    actions = inter["action"].cast(pl.String).to_list()
    r = np.array([ACTION_TO_RATING[a] for a in actions])
    shape = (len(users), len(item_ids))
    mu, bu, bi, p, q = _als(u, i, r, shape, cfg)
    rating = np.clip(mu + bu[:, None] + bi[None, :] + p @ q.T, 1.0, 5.0)
    rated = np.zeros(shape)
    rated[u, i] = 1.0
    proj = _low_rank(rated, cfg.rank, np.random.default_rng([cfg.fit_seed, 2]))
    logpop = np.log1p(rated.sum(0))
    pop_z = np.broadcast_to((logpop - logpop.mean()) / max(float(logpop.std()), 1e-9), shape)
    feats = np.stack([np.ones(rated.size), proj.ravel(), pop_z.ravel()], 1)
    ww = _logistic(feats, rated.ravel())
    watch = ww[0] + ww[1] * proj + ww[2] * pop_z
    wb = _logistic(np.stack([np.ones(len(r)), rating[u, i]], 1), (r == 5.0).astype(float))
    buy = 1.0 / (1.0 + np.exp(-(wb[0] + wb[1] * rating)))
    dirs = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-9)
    events: list[tuple[list[int], list[str]]] = [([], []) for _ in users]
    for uu, ii, a in zip(u.tolist(), i.tolist(), actions, strict=True):
        events[uu][0].append(ii)
        events[uu][1].append(a)
    for arr in (rating, watch, buy, dirs):
        arr.setflags(write=False)
    return MovieLensFit(
        ids=[str(int(x)) for x in item_ids],
        titles=items["title"].to_list(),
        genres=[c.split() if c else [] for c in items["category"].to_list()],
        mu=mu,
        rating=rating,
        watch=watch,
        buy=buy,
        item_dirs=dirs,
        user_events=events,
    )


class MovieLensSimulator(UserPoolSimulator):
    """See the module docstring; `seed` fixes arrivals, responses and trends (not the fit). A
    user's `kind` is the row of the real user they replay."""

    name = "movielens"

    def __init__(
        self, seed: int, cfg: MovieLensConfig | None = None, data_dir: Path | None = None
    ) -> None:
        self.cfg = cfg = cfg or MovieLensConfig()
        folder = Path(data_dir) if data_dir is not None else fetch_movielens_100k()
        fit_cfg = MovieLensConfig(
            rank=cfg.rank, l2=cfg.l2, als_epochs=cfg.als_epochs, fit_seed=cfg.fit_seed
        )
        self.fit = fit = fit_movielens(folder.resolve(), fit_cfg)
        super().__init__(cfg, fit.ids, fit.titles, SimStreams(seed, 21))
        self._logit0 = cfg.bias + cfg.w_watch * fit.watch + cfg.w_like * (fit.rating - fit.mu)
        self._trend = np.zeros(len(self.ids))
        self._order = np.zeros(0, np.int64)
        self._fill()

    # --- the response model -------------------------------------------------------------
    def _response(self, user: PoolUser) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(attraction, P(alipay | click), mean dwell seconds), each (items,)."""
        c = self.cfg
        logit = self._logit0[user.kind] + self._trend
        if user.last >= 0:
            dirs = self.fit.item_dirs
            logit += c.w_seq * np.maximum(dirs @ dirs[user.last], 0.0)
        if user.seen:
            logit[list(user.seen)] -= c.w_seen
        a: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
        return a, self.fit.buy[user.kind], c.dwell_base + c.dwell_gain * a

    def _new_user(self, index: int) -> PoolUser:
        """The next real user of this pass's arrival order (a new order every pass), with their
        first `warmup_events` real ratings, one second apart, ending now."""
        n_real = len(self.fit.user_events)
        if index % n_real == 0:
            # keyed by the pass (this simulator's warm-ups are the real ratings, no draws)
            self._order = self.streams.newcomer(index // n_real).permutation(n_real)
        user = PoolUser(int(self._order[index % n_real]))
        rows, actions = self.fit.user_events[user.kind]
        m = min(self.cfg.warmup_events, len(rows))
        for j in range(m):
            self._act(user, rows[j], actions[j], self._clock - (m - 1 - j))
        return user

    def item_features(self) -> list[list[str]]:
        """Genre and release-year tokens per movie."""
        out = []
        for title, genres in zip(self.fit.titles, self.fit.genres, strict=True):
            years = re.findall(r"\((\d{4})\)", title or "")
            out.append([f"genre={g}" for g in genres] + [f"year={y}" for y in years[-1:]])
        return out

    def shift(self) -> None:
        """A genre trend: `trend_genres` genres drawn with the seed gain, the others lose."""
        genres = sorted({g for gs in self.fit.genres for g in gs} - {"unknown"})
        k = min(self.cfg.trend_genres, len(genres))
        trending = set(self._season.choice(genres, size=k, replace=False).tolist())
        hit = np.array([bool(trending.intersection(gs)) for gs in self.fit.genres])
        self._trend = np.where(hit, self.cfg.w_trend, -self.cfg.w_untrend)
        self._forget_values()


__all__ = [
    "ACTION_TO_RATING",
    "MovieLensConfig",
    "MovieLensFit",
    "MovieLensSimulator",
    "fit_movielens",
]
