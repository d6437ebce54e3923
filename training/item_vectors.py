"""Collaborative item vectors: a truncated SVD of the item-item PPMI co-occurrence matrix.

Title embeddings carry no collaborative signal (two films with unrelated titles can share
their audience). `collaborative_vectors` fits item vectors on the TRAINING rows only (the
held-out rows never enter), from which users' items co-occur:

    C = X^T X (X: binary user x item), PPMI(i, j) = max(0, log(C_ij * N / (C_i * C_j))),
    PPMI ~ U S V^T (rank r), item vector = U * sqrt(S), rows L2-normalised.

`blend_vectors` concatenates them with the title vectors (weights on the squared norm), so
the state encoder, the case keys and the catalogue neighbours all see both signals.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

__all__ = ["blend_vectors", "collaborative_vectors"]

log = logging.getLogger(__name__)


def _normalise(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def collaborative_vectors(
    user: np.ndarray, item_rows: np.ndarray, n_items: int, dim: int, seed: int = 0
) -> np.ndarray:
    """(n_items, dim) L2-normalised vectors; rows of items never seen are zero.

    user: (n,) user ids of the fitting rows; item_rows: (n,) catalogue rows of their items.
    """
    assert user.shape == item_rows.shape, f"{user.shape=} {item_rows.shape=}"
    out = np.zeros((n_items, dim), np.float32)
    if len(user) == 0 or dim <= 0:
        return out
    _, urow = np.unique(user, return_inverse=True)
    x = sp.csr_matrix(
        (np.ones(len(urow), np.float32), (urow, item_rows)), shape=(int(urow.max()) + 1, n_items)
    )
    x.data[:] = 1.0  # binary: duplicates summed by the constructor
    c = (x.T @ x).tocoo()
    counts = np.asarray(x.sum(axis=0)).ravel()
    total = float(counts.sum())
    keep = c.row != c.col
    r, k, v = c.row[keep], c.col[keep], c.data[keep].astype(np.float64)
    pmi = np.log(v * total / (counts[r] * counts[k]))
    pos = pmi > 0
    m = sp.csr_matrix((pmi[pos], (r[pos], k[pos])), shape=(n_items, n_items))
    rank = min(dim, n_items - 2)
    if m.nnz == 0 or rank < 1:
        return out
    rng = np.random.default_rng(seed)
    u, s, _ = svds(m, k=rank, v0=rng.standard_normal(n_items))
    vec = u * np.sqrt(np.maximum(s, 0.0))
    out[:, :rank] = vec
    seen = counts > 0
    out[seen] = _normalise(out[seen])
    out[~seen] = 0.0
    log.info("collaborative vectors: %d items (%d seen), rank %d", n_items, int(seen.sum()), rank)
    return out


def blend_vectors(text: np.ndarray, collab: np.ndarray, weight: float) -> np.ndarray:
    """Row-normalised [sqrt(1 - w) * text, sqrt(w) * collab] (w = share of the squared norm)."""
    assert 0.0 <= weight <= 1.0, f"weight must be in [0, 1], got {weight}"
    assert text.shape[0] == collab.shape[0], f"{text.shape=} {collab.shape=}"
    both = np.concatenate([np.sqrt(1.0 - weight) * text, np.sqrt(weight) * collab], axis=1)
    return _normalise(both)
