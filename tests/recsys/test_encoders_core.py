"""Text, state and case encoders; import hygiene of the core modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from recsys.config import StateConfig
from recsys.memory.case_encoder import PayloadCaseEncoder, RecCaseEncoder
from recsys.memory.text_encoder import CachedTextEncoder, HashingTextEncoder
from recsys.rec.state_encoder import AttentionPooling, StateEncoder
from recsys.records import Action, Interaction, UserState


def test_hashing_encoder_deterministic_and_similar_texts_closer() -> None:
    """Same text -> same vector; a near-duplicate title is closer than an unrelated one."""
    enc = HashingTextEncoder(dim=256)
    a, b, c = enc.encode(["红色 连衣裙 夏季", "红色 连衣裙 夏", "笔记本 电脑 内存"])
    assert np.allclose(enc.encode(["红色 连衣裙 夏季"])[0], a)
    assert float(a @ b) > float(a @ c) and abs(float(np.linalg.norm(a)) - 1) < 1e-5


def test_cache_hits_and_matches_inner(tmp_path: Path) -> None:
    """The cache returns the inner vectors and serves repeats (also after reopening) from disk."""
    inner = HashingTextEncoder(dim=32)
    cached = CachedTextEncoder(inner, tmp_path)
    texts = ["a b", "c d", "a b"]
    assert np.allclose(cached.encode(texts), inner.encode(texts))
    assert cached.misses == 2 and cached.hits == 1
    cached.close()
    again = CachedTextEncoder(inner, tmp_path)
    assert np.allclose(again.encode(["c d"]), inner.encode(["c d"])) and again.hits == 1


def _state_encoder() -> tuple[StateEncoder, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    vecs = {f"i{i}": rng.normal(size=16).astype(np.float32) for i in range(5)}
    enc = StateEncoder(
        StateConfig(half_life_hours=1.0),
        lambda ids: np.stack([vecs[i] for i in ids]),
        lambda ids: [f"title {i}" for i in ids],
        dim=16,
    )
    return enc, vecs


def test_state_pooling_weights_actions_and_time() -> None:
    """Weights = action weight * 0.5 ** (age / half-life); future events are ignored."""
    enc, vecs = _state_encoder()
    now = 10 * 3600.0
    ev = [
        Interaction("u", "i0", Action.CLICK, now - 3600),
        Interaction("u", "i1", Action.CART, now),
        Interaction("u", "i2", Action.CLICK, now + 5),
    ]
    st = enc.encode("u", ev, now=now)
    want = (0.5 * 1.0 * vecs["i0"] + 3.0 * vecs["i1"]) / 3.5
    assert np.allclose(st.vec, want / np.linalg.norm(want), atol=1e-5)
    assert st.recent_item_ids == ("i1", "i0") and "cart 「title i1」" in st.text


def test_attention_pooling_shapes_and_mask() -> None:
    """Attention pooling gives unit rows, zero rows for empty sequences, and ignores padding."""
    pool = AttentionPooling(16)
    x = torch.randn(2, 3, 16)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = pool(x, torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3), mask)
    assert out.shape == (2, 16) and torch.allclose(out[1], torch.zeros(16))
    x2 = x.clone()
    x2[0, 2] = 100.0
    out2 = pool(x2, torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3), mask)
    assert torch.allclose(out[0], out2[0], atol=1e-6)


def test_case_encoders_generic_and_rec() -> None:
    """Keys mix state and payload text; the recommender dedup key is item|action."""
    text = HashingTextEncoder(dim=16)
    state = UserState("u", np.ones(16, np.float32) / 4, "summary", 0.0)
    case = RecCaseEncoder(text).make_case(state, "i9", "红色 连衣裙", Action.CART, 0.6, 5.0)
    assert case.payload_key == "i9|cart" and case.payload["user_summary"] == "summary"
    want = 0.5 * state.vec + 0.5 * text.encode(["红色 连衣裙"])[0]
    assert np.allclose(case.key, want / np.linalg.norm(want), atol=1e-5)
    agent = PayloadCaseEncoder(text, lambda p: p["task"] + " " + p["plan"], state_weight=0.0)
    cases = agent.make_cases(
        np.zeros((1, 16), np.float32), [{"task": "t", "plan": "p"}], [1.0], [0.0]
    )
    assert np.allclose(cases[0].key, text.encode(["t p"])[0], atol=1e-5)


def test_state_only_case_keys_and_their_cold_fallback() -> None:
    """state_weight 1 keys by the state alone; a zero state falls back to the content vector."""
    enc = HashingTextEncoder(32)
    ce = PayloadCaseEncoder(enc, payload_text=lambda p: p["t"], state_weight=1.0)
    rng = np.random.default_rng(0)
    state = rng.normal(size=(1, 32)).astype(np.float32)
    a, b = ce.keys(np.vstack([state, state]), [{"t": "red shoe"}, {"t": "blue tent"}])
    np.testing.assert_allclose(a, b, atol=1e-6)  # content ignored
    np.testing.assert_allclose(a, state[0] / np.linalg.norm(state[0]), atol=1e-6)
    cold = ce.keys(np.zeros((1, 32), np.float32), [{"t": "red shoe"}])[0]
    text = enc.encode(["red shoe"])[0]
    np.testing.assert_allclose(cold, text / np.linalg.norm(text), atol=1e-6)
    assert abs(float(np.linalg.norm(cold)) - 1.0) < 1e-5


def test_use_encoder_real_path() -> None:
    """The default multilingual encoder gives 512-d unit vectors; a reworded title is closest."""
    from recsys.memory.text_encoder import UseTextEncoder

    v = UseTextEncoder(threads=1).encode(
        ["红色 连衣裙 夏季 新款", "夏季 新款 红色 连衣裙 女", "联想 笔记本 电脑 16G"]
    )
    assert v.shape == (3, 512) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.3
