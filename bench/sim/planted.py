"""The planted simulator: the synthetic Tianchi world's ground truth answers any list.

Assumptions (all drawn from `data.synthetic_world.build_world` for the seed):
- a user belongs to one segment; the segment prefers a few categories (Dirichlet weights) and
  a few brands inside them;
- each item has one planted next item; right after a user acted on item j, the planted next
  item of j is very attractive (the sequential pattern a case memory can learn);
- items the user already acted on lose their appeal (no repeat purchases);
- attraction a(u, i) = sigmoid(bias + w_cat * taste + w_brand * brand + w_next * is_next
  + w_pop * popularity z-score - w_seen * seen); a shown item at position k is examined with
  probability theta[k] = 1 / (k + 1)^eta and clicked with probability a (position-based
  model), then ends at a funnel action (`bench.sim.base.draw_funnel`, P(alipay) grows with
  a) with an exponential dwell time whose mean grows with a;
- users arrive by activity from an active set; after each decision a user leaves with
  probability `leave` (`leave_idle` when they acted on nothing) and a newcomer takes the seat;
  a newcomer has a short warm-up history drawn from their own taste;
- `shift()` (a new season) draws new preferred categories for every segment.
The best list for a state is exact: items sorted by a * E[value | click].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.sim.base import PoolUser, UserPoolSimulator
from bench.sim.streams import SimStreams
from data.synthetic_world import World, build_world, item_titles


@dataclass(frozen=True)
class PlantedConfig:
    """Size of the planted world and the weights of its response model."""

    users: int = 20_000
    """User pool (newcomers are drawn from it in order)."""
    items: int = 400
    """Catalogue size."""
    n_categories: int = 20
    """Item categories."""
    n_segments: int = 8
    """User segments."""
    categories_per_segment: int = 3
    """Preferred categories per segment."""
    active: int = 300
    """Users present at any time."""
    list_size: int = 10
    """Items per shown list."""
    eta: float = 0.8
    """Position bias: theta[k] = 1 / (k + 1)^eta."""
    bias: float = -3.5
    """Attraction logit of an item with no appeal."""
    w_cat: float = 3.0
    """Logit weight of the segment's taste for the item's category (taste in [0, 1])."""
    w_brand: float = 1.0
    """Logit bonus of a preferred brand."""
    w_next: float = 3.0
    """Logit bonus of the planted next item of the user's last acted item."""
    w_pop: float = 0.3
    """Logit weight of the item's popularity z-score."""
    w_seen: float = 4.0
    """Logit penalty of an item the user already acted on."""
    leave: float = 0.02
    """Departure probability after a decision with an action."""
    leave_idle: float = 0.08
    """Departure probability after a decision with no action."""
    warmup_events: int = 3
    """Events of a newcomer's history, drawn from their taste."""
    step_seconds: float = 60.0
    """Simulator clock advance per decision."""


class PlantedSimulator(UserPoolSimulator):
    """See the module docstring; `seed` fixes the world, arrivals and responses. A user's
    `kind` is their segment."""

    name = "planted"

    def __init__(self, seed: int, cfg: PlantedConfig | None = None) -> None:
        self.cfg = cfg = cfg or PlantedConfig()
        self.world: World = build_world(
            seed=seed,
            users=cfg.users,
            items=cfg.items,
            n_categories=cfg.n_categories,
            n_segments=cfg.n_segments,
            categories_per_segment=cfg.categories_per_segment,
            zipf_exponent=1.0,
            null_brand_rate=0.0,
        )
        ids = [str(i + 1) for i in range(cfg.items)]
        titles = item_titles(self.world, seed, 0, cfg.items)
        super().__init__(cfg, ids, titles, SimStreams(seed, 11))
        logpop = np.log(self.world.item_popularity)
        self._pop_z = (logpop - logpop.mean()) / max(float(logpop.std()), 1e-9)
        self._taste = self._taste_table(self.world.segment_categories)
        self._brand = np.zeros((cfg.n_segments, cfg.items), bool)
        for s, brands in enumerate(self.world.segment_brands):
            self._brand[s] = np.isin(self.world.item_brand, brands)
        self._fill()

    # --- the planted model --------------------------------------------------------------
    def _taste_table(self, seg_cats: np.ndarray) -> np.ndarray:
        """(segments, items) taste in [0, 1]: the segment's weight of the item's category,
        scaled so each segment's favourite category has taste 1."""
        w = self.world.segment_category_weights
        taste = np.zeros((self.cfg.n_segments, self.cfg.items))
        for s in range(self.cfg.n_segments):
            for c, wc in zip(seg_cats[s], w[s], strict=True):
                taste[s, self.world.item_category == c] = wc / w[s].max()
        return taste

    def _response(self, user: PoolUser) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(attraction, P(alipay | click), mean dwell seconds), each (items,)."""
        c = self.cfg
        logit = (
            c.bias
            + c.w_cat * self._taste[user.kind]
            + c.w_brand * self._brand[user.kind]
            + c.w_pop * self._pop_z
        )
        if user.last >= 0:
            logit[self.world.transitions[user.last]] += c.w_next
        if user.seen:
            logit[list(user.seen)] -= c.w_seen
        a: np.ndarray = 1.0 / (1.0 + np.exp(-logit))
        return a, 0.05 + 0.3 * a, 15.0 + 120.0 * a

    def _new_user(self, index: int) -> PoolUser:
        """A user of the `index`-th pool user's segment with a warm-up drawn from its taste."""
        user = PoolUser(int(self.world.user_segment[index % self.cfg.users]))
        rng = self.streams.newcomer(index)
        for _ in range(self.cfg.warmup_events):
            a = self._values(user).attract
            row = int(rng.choice(len(a), p=a / a.sum()))
            self._act(user, row, "click", self._clock)
        return user

    def item_features(self) -> list[list[str]]:
        """Category and brand tokens per item."""
        w = self.world
        return [
            [f"cat={w.item_category[i]}", f"brand={w.item_brand[i]}"] for i in range(self.cfg.items)
        ]

    def shift(self) -> None:
        """A new season: new preferred categories (and brands in them) for every segment."""
        w = self.world
        n_cat, k = self.cfg.n_categories, self.cfg.categories_per_segment
        cats = np.stack(
            [self._season.choice(n_cat, size=k, replace=False) for _ in range(self.cfg.n_segments)]
        )
        self._taste = self._taste_table(cats)
        for s in range(self.cfg.n_segments):
            brands = [
                b
                for c in cats[s]
                for b in self._season.permutation(np.unique(w.item_brand[w.item_category == c]))[:3]
            ]
            self._brand[s] = np.isin(w.item_brand, brands)
        self._forget_values()


__all__ = ["PlantedConfig", "PlantedSimulator"]
