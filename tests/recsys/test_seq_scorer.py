"""The `seq` scorer: the learned sequence policy ranks through the one `Recommender`, and a
`ModelBundle` carries it (save, load, recommend)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recsys.bundle import ModelBundle
from recsys.config import CaseBankConfig
from recsys.errors import BundleError
from recsys.memory.case_bank import CaseBank
from recsys.presets import online
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rec.request import RecRequest
from recsys.rec.seq import SeqModelConfig, UserSequence
from recsys.rec.seq.batch import sequence_of
from recsys.rec.seq.item_prior import ItemPrior, recency_input, standardised
from recsys.rec.seq.policy import SeqPolicy, SeqPolicyConfig
from recsys.records import Action, Interaction
from recsys.rl.learner import Learner
from recsys.rl.sqn import SQNConfig
from training.seq_fit import SeqFitConfig, fit_seq

N_ITEMS = 8
DIM = 16


def _sequences() -> list[UserSequence]:
    """Cyclic sequences 1 -> 2 -> ... -> 8 -> 1, one event per second."""
    out = []
    for u in range(10):
        items = [(u + t) % N_ITEMS + 1 for t in range(9)]
        out.append(
            UserSequence(
                np.array(items, np.int64),
                np.full(9, 2, np.int64),
                np.arange(9, dtype=np.float64) + 100.0 * u,
                np.full(9, 0.3, np.float32),
            )
        )
    return out


@pytest.fixture(scope="module")
def policy() -> SeqPolicy:
    """A tiny trained policy with its case memory (K 5, w 2)."""
    model = SeqModelConfig(n_items=N_ITEMS, encoder="gru", dim=8, layers=1, max_len=12)
    sqn = SQNConfig(prior=True)
    res = fit_seq(SeqFitConfig(model=model, sqn=sqn, epochs=3, batch_size=4, lr=1e-2), _sequences())
    return SeqPolicy.build(
        res.model, _sequences(), SeqPolicyConfig(case_k=5, case_weight=2.0, sqn=sqn)
    )


def _bundle(policy: SeqPolicy | None) -> ModelBundle:
    """A bundle of the `seq` scorer over an 8-item catalogue (ids "i1".."i8")."""
    core = online("seq")
    core = replace(core, recommend=replace(core.recommend, top_n=5, exclude_seen=True))
    ids = [f"i{k}" for k in range(1, N_ITEMS + 1)]
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    items = ItemTable(ids, [f"title {i}" for i in ids], vecs)
    bank = CaseBank(CaseBankConfig(index="flat"), DIM)
    learner = Learner(core.learner, DIM, DIM)
    return ModelBundle(core, learner, bank, items, Popularity(N_ITEMS), seq=policy)


def _request(items: list[int], now: float = 5000.0) -> RecRequest:
    """A request whose history is `items` (model indices 1..8), one per second before `now`."""
    events = [
        Interaction("u", f"i{i}", Action.CART, now - len(items) + k) for k, i in enumerate(items)
    ]
    return RecRequest("u", events, now)


def test_the_list_is_the_policys_argmax_over_unseen_items(policy: SeqPolicy) -> None:
    """The served list is the top 5 of the policy's scores with the history's items removed."""
    rec = _bundle(policy).recommender()
    req = _request([3, 4, 5])
    index = {f"i{k}": k for k in range(1, N_ITEMS + 1)}
    scores = policy.scores([sequence_of(req.events, index)], np.array([req.now]))[0]
    unseen = [r for r in np.argsort(-scores, kind="stable").tolist() if r + 1 not in (3, 4, 5)]
    res = rec.recommend(req)
    assert res.items == unseen[:5]
    assert res.scores == pytest.approx([float(scores[r]) for r in unseen[:5]], abs=1e-5)


def test_a_bundle_with_the_policy_saves_loads_and_recommends_the_same(
    policy: SeqPolicy, tmp_path: Path
) -> None:
    """A saved seq bundle loads with its policy and gives the same lists and scores."""
    bundle = _bundle(policy)
    bundle.save(tmp_path / "b")
    loaded = ModelBundle.load(tmp_path / "b")
    assert loaded.seq is not None and loaded.seq.cfg == policy.cfg
    assert len(loaded.seq.memory or []) == len(policy.memory or [])
    for hist in ([1], [2, 3], [8, 1, 2, 5]):
        a = bundle.recommender().recommend(_request(hist))
        b = loaded.recommender().recommend(_request(hist))
        assert a.items == b.items and a.scores == pytest.approx(b.scores, abs=1e-6)


def test_a_seq_bundle_without_its_policy_is_refused(policy: SeqPolicy, tmp_path: Path) -> None:
    """Loading a seq-scorer bundle whose policy folder is gone raises a BundleError."""
    _bundle(policy).save(tmp_path / "b")
    (tmp_path / "b" / "seq" / "seq.pt").unlink()
    with pytest.raises(BundleError, match="seq"):
        ModelBundle.load(tmp_path / "b")
    with pytest.raises(BundleError, match="sequence policy"):
        _bundle(None).recommender().recommend(_request([1, 2]))


def test_a_cold_user_gets_the_popularity_list(policy: SeqPolicy) -> None:
    """No history: the pipeline's popularity list, not the policy's."""
    bundle = _bundle(policy)
    bundle.popularity.add(np.array([6, 6, 6, 2], np.int64), np.array([1.0, 2.0, 3.0, 4.0]))
    res = bundle.recommender().recommend(RecRequest("new", [], 5000.0))
    assert res.items[:2] == [6, 2]


def test_ablation_heads_rank_by_their_own_scores(policy: SeqPolicy) -> None:
    """ce ranks by the supervised logits, cases by the vote alone, w = 0 by the policy logits."""
    seq = [sequence_of(_request([2, 3]).events, {f"i{k}": k for k in range(1, 9)})]
    before = np.array([5000.0])
    sc = policy.heads(seq)
    votes = policy.votes(sc.states, before, [5])
    assert np.allclose(
        policy.with_config(replace(policy.cfg, head="ce")).scores(seq, before), sc.ce
    )
    cases = policy.with_config(replace(policy.cfg, head="cases")).scores(seq, before)
    assert np.allclose(cases, votes[5]) and np.isclose(cases.sum(), 1.0)
    q_only = policy.with_config(replace(policy.cfg, case_weight=0.0)).scores(seq, before)
    assert np.allclose(q_only, sc.policy)
    assert np.allclose(policy.scores(seq, before), sc.policy + 2.0 * votes[5])


def _prior() -> ItemPrior:
    """An item prior that points every item at item 7 (and nothing else)."""
    m = np.zeros((N_ITEMS, N_ITEMS), np.float32)
    m[:, 6] = 1.0
    return ItemPrior(m, window=2, decay=0.5, name="test")


def test_the_item_prior_moves_the_list_by_its_weight(policy: SeqPolicy) -> None:
    """v = 0 gives the base scores; a large v puts the prior's item first; the prior term is the
    standardised prior scaled by the spread of the base scores."""
    seq = [sequence_of(_request([2, 3]).events, {f"i{k}": k for k in range(1, 9)})]
    before = np.array([5000.0])
    base = policy.scores(seq, before)
    with_prior = policy.with_prior(_prior())
    off = with_prior.with_config(replace(policy.cfg, prior_weight=0.0)).scores(seq, before)
    assert np.allclose(off, base)
    big = with_prior.with_config(replace(policy.cfg, prior_weight=50.0)).scores(seq, before)
    assert int(np.argmax(big[0])) == 6
    p = _prior().scores(seq)
    assert np.allclose(big, base + 50.0 * base.std(axis=1, keepdims=True) * standardised(p))
    with pytest.raises(ValueError, match="item prior"):
        policy.with_config(replace(policy.cfg, prior_weight=1.0)).scores(seq, before)


def test_a_bundle_carries_the_item_prior(policy: SeqPolicy, tmp_path: Path) -> None:
    """A saved policy with a prior loads it back and ranks the same."""
    pol = policy.with_prior(_prior()).with_config(replace(policy.cfg, prior_weight=1.0))
    bundle = _bundle(pol)
    bundle.save(tmp_path / "b")
    loaded = ModelBundle.load(tmp_path / "b")
    assert loaded.seq is not None and loaded.seq.prior is not None
    assert np.array_equal(loaded.seq.prior.matrix, pol.prior.matrix if pol.prior else None)
    assert (loaded.seq.prior.window, loaded.seq.prior.decay) == (2, 0.5)
    for hist in ([1], [4, 5, 6]):
        a = bundle.recommender().recommend(_request(hist))
        b = loaded.recommender().recommend(_request(hist))
        assert a.items == b.items and a.scores == pytest.approx(b.scores, abs=1e-6)


def test_recency_input_weighs_the_latest_events() -> None:
    """The latest event weighs 1, each step back times the decay, a repeat keeps its latest
    weight, the window cuts older events and an unknown item (-1) still takes its step."""
    x = recency_input(np.array([0, 3, 1, -1, 1]), 5, window=4, decay=0.5)
    assert x.tolist() == [0.0, 1.0, 0.0, 0.125, 0.0]
    assert recency_input(np.array([2, 0, 2]), 4).tolist() == [1.0, 0.0, 1.0, 0.0]
