"""Off-policy evaluation of logged serving decisions with Open Bandit Pipeline (OBP).

OBP (the maintained fork `sb-obp`) needs numpy<2 and pandas<3, so it runs in its own pinned
venv (`env.ensure_obp_env`) as a subprocess (`obp_job.py`); `runner.estimate_policy_values`
is the in-process entry point.
"""

from __future__ import annotations

from bench.ope.env import ObpEnvConfig, ensure_obp_env
from bench.ope.runner import Estimate, estimate_policy_values

__all__ = ["Estimate", "ObpEnvConfig", "ensure_obp_env", "estimate_policy_values"]
