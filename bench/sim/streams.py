"""Common random numbers of the simulators (`SimStreams`).

Every method run on a seed meets the same draws, so the paired comparison of two methods
measures what they showed, not which random numbers their runs happened to consume. Decision t's
responses come from a generator keyed by (seed, t) that always draws the same block (per
position: examination-and-click, alipay, cart and collect uniforms and a unit exponential dwell;
then the departure uniform), whatever the list; the `index`-th newcomer's warm-up from one keyed
by (seed, index); the arriving seat from one stream drawn once per decision. Two methods that
show different lists at decision t still meet the same uniforms there, so their users click,
leave and arrive alike wherever the lists allow it (one sequential stream drawing a funnel and a
dwell per click, as before, fell out of step at the first click that differed and decoupled
every later draw).

The keys: (seed, tag) for the arrivals, (seed, tag + 1, t) for decision t's responses,
(seed, tag + 2) for the taste shifts and (seed, tag + 3, k) for the k-th newcomer; a simulator
picks its own tag, so two simulators on one seed draw differently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SimStreams"]


@dataclass(frozen=True)
class SimStreams:
    """The keys of a run's random numbers (module docstring: common random numbers)."""

    seed: int
    tag: int
    """Distinguishes one simulator's streams from another's on the same seed."""

    def arrivals(self) -> np.random.Generator:
        """The arriving seat, one draw per decision."""
        return np.random.default_rng([self.seed, self.tag])

    def responses(self, decision: int) -> np.random.Generator:
        """Decision `decision`'s response draws."""
        return np.random.default_rng([self.seed, self.tag + 1, decision])

    def newcomer(self, index: int) -> np.random.Generator:
        """The `index`-th newcomer's warm-up draws."""
        return np.random.default_rng([self.seed, self.tag + 3, index])

    def season(self) -> np.random.Generator:
        """Taste shifts."""
        return np.random.default_rng([self.seed, self.tag + 2])
