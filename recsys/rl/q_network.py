"""Twin Q network over (state, case) pairs.

Q(s, c) = MLP([P_s s, P_c k_c, P_s s * P_c k_c, f_c]) where k_c is the case key and f_c the
case features (similarity, case reward, case age, visits). Scoring pairs rather than a fixed
action set lets the candidate set change per request (Memento, Eq. for Q(s, c) over retrieved
cases). Two independent heads for clipped double Q (SAC, Haarnoja et al. 2018).
"""

from __future__ import annotations

import torch
from torch import nn

from recsys.config import QNetworkConfig

__all__ = ["PairQ", "TwinQNetwork"]


class PairQ(nn.Module):
    """One Q head: state (B, ds), keys (B, K, dk), features (B, K, F) -> Q (B, K)."""

    def __init__(self, cfg: QNetworkConfig, state_dim: int, key_dim: int) -> None:
        super().__init__()
        self.use_vectors = cfg.use_vectors
        self.proj_s = nn.Linear(state_dim, cfg.proj_dim)
        self.proj_c = nn.Linear(key_dim, cfg.proj_dim)
        layers: list[nn.Module] = []
        width = (3 * cfg.proj_dim if cfg.use_vectors else 0) + cfg.feature_dim
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU()]
            width = cfg.hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(
        self, state: torch.Tensor, keys: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        b, k, _ = keys.shape
        assert state.shape[0] == b and state.ndim == 2, f"{state.shape=} {keys.shape=}"
        assert features.shape[:2] == (b, k), f"{features.shape=} {keys.shape=}"
        if not self.use_vectors:
            return self.mlp(features).squeeze(-1)
        ps = self.proj_s(state)[:, None, :].expand(b, k, -1)
        pc = self.proj_c(keys)
        x = torch.cat([ps, pc, ps * pc, features], dim=-1)
        return self.mlp(x).squeeze(-1)


class TwinQNetwork(nn.Module):
    """Two independent `PairQ` heads; forward returns (q1, q2), each (B, K)."""

    def __init__(self, cfg: QNetworkConfig, state_dim: int, key_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.state_dim = state_dim
        self.key_dim = key_dim
        self.q1 = PairQ(cfg, state_dim, key_dim)
        self.q2 = PairQ(cfg, state_dim, key_dim)

    def forward(
        self, state: torch.Tensor, keys: torch.Tensor, features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.q1(state, keys, features), self.q2(state, keys, features)
