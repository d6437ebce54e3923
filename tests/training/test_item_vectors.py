"""Collaborative item vectors: co-audience structure, unseen items, no held-out rows."""

from __future__ import annotations

import numpy as np

from training.item_vectors import blend_vectors, collaborative_vectors


def _two_audiences(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Users 0-39 consume items 0-4, users 40-79 items 5-9 (item 10 never consumed)."""
    users, items = [], []
    for u in range(80):
        pool = np.arange(5) if u < 40 else np.arange(5, 10)
        for i in rng.choice(pool, 3, replace=False):
            users.append(u)
            items.append(int(i))
    return np.array(users), np.array(items)


def test_items_with_one_audience_are_closer_than_across_audiences() -> None:
    """Items sharing their users have a higher cosine than items of disjoint audiences."""
    users, items = _two_audiences(np.random.default_rng(0))
    v = collaborative_vectors(users, items, 11, dim=4)
    sim = v @ v.T
    within = np.mean([sim[a, b] for a in range(5) for b in range(5) if a != b])
    across = np.mean([sim[a, b] for a in range(5) for b in range(5, 10)])
    assert within > across + 0.5, (within, across)
    assert np.allclose(np.linalg.norm(v[:10], axis=1), 1.0, atol=1e-5)
    assert not v[10].any(), "an item nobody consumed has no collaborative vector"


def test_vectors_depend_only_on_the_rows_given() -> None:
    """Adding rows changes the vectors, so leaving the held-out rows out really excludes them."""
    users, items = _two_audiences(np.random.default_rng(1))
    base = collaborative_vectors(users, items, 11, dim=4)
    again = collaborative_vectors(users, items, 11, dim=4)
    assert np.allclose(base, again), "deterministic for the same rows"
    more = collaborative_vectors(
        np.concatenate([users, [0, 0, 0]]), np.concatenate([items, [10, 7, 8]]), 11, dim=4
    )
    assert more[10].any() and not np.allclose(np.abs(base), np.abs(more), atol=1e-3)


def test_blend_keeps_unit_rows_and_weights_the_parts() -> None:
    """Blended rows are unit length and the collaborative share of the squared norm is w."""
    rng = np.random.default_rng(2)
    text = rng.standard_normal((6, 8)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    cf = rng.standard_normal((6, 3)).astype(np.float32)
    cf /= np.linalg.norm(cf, axis=1, keepdims=True)
    out = blend_vectors(text, cf, 0.9)
    assert out.shape == (6, 11)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose((out[:, 8:] ** 2).sum(axis=1), 0.9, atol=1e-5)
