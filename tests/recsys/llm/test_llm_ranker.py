"""Likelihood ranking with a cached, packed prefix on the real tiny packaged model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from recsys.llm.prompts import neutral_prompt
from recsys.llm.protocol import FrozenLLM, RankRequest
from recsys.llm.ranker import LLMRanker, RankerConfig

PROMPT = "The user bought a phone and then looked at chargers.\nThe next item the user wants is:\n"
CANDS = ["phone case", "wireless charger for phones", "red summer dress", "garden hose", "a"]


def test_tiny_model_ranks_and_satisfies_protocol(tiny_ranker: LLMRanker) -> None:
    """The tiny model loaded offline gives one finite score and negative log-likelihood each."""
    assert isinstance(tiny_ranker, FrozenLLM)
    scores = tiny_ranker.rank(PROMPT, CANDS)
    assert scores.shape == (len(CANDS),) and np.all(np.isfinite(scores))
    loglik = tiny_ranker.loglik(PROMPT, CANDS)
    assert np.all(loglik < 0) and not np.array_equal(scores, loglik)


def test_packed_prefix_scores_match_naive_full_sequence(tiny_ranker: LLMRanker) -> None:
    """KV-cached packed scoring equals one full forward per candidate (fp32 oracle)."""
    fast = tiny_ranker.loglik(PROMPT, CANDS)
    naive = tiny_ranker.score_naive(PROMPT, CANDS)
    np.testing.assert_allclose(fast, naive, atol=1e-4)


def test_manual_logprob_oracle(tiny_ranker: LLMRanker) -> None:
    """The score is the mean of log-softmax at each candidate token, computed by hand here."""
    import torch

    ids = tiny_ranker.encode_prompt(PROMPT)
    cand = tiny_ranker.encode_candidate("wireless charger for phones")
    with torch.inference_mode():
        logits = tiny_ranker.model(input_ids=torch.tensor([ids + cand])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    expected = np.mean([logp[len(ids) - 1 + j, t].item() for j, t in enumerate(cand)])
    got = tiny_ranker.loglik(PROMPT, ["wireless charger for phones"])[0]
    assert abs(got - expected) < 1e-4


def _naive_calibrated(ranker: LLMRanker, prompt: str, cands: tuple[str, ...]) -> np.ndarray:
    """Oracle: naive conditional scores minus weighted naive neutral-prompt scores."""
    cond = ranker.score_naive(prompt, cands)
    neutral = neutral_prompt(prompt)
    if neutral == prompt:  # a single-line prompt has no context to remove
        return cond
    return cond - ranker.config.calibration_weight * ranker.score_naive(neutral, cands)


def test_rank_batch_matches_rank(tiny_ranker: LLMRanker) -> None:
    """Row-batched requests of different lengths give the calibrated naive oracle scores."""
    requests = [
        RankRequest(PROMPT, tuple(CANDS)),
        RankRequest("I like cooking.\nNext:\n", ("frying pan", "knife set", "tv")),
        RankRequest("Books.\n", ("novel",)),
    ]
    batched = tiny_ranker.rank_batch(requests)
    for request, got in zip(requests, batched, strict=True):
        oracle = _naive_calibrated(tiny_ranker, request.prompt, request.candidates)
        np.testing.assert_allclose(got, oracle, atol=1e-4)
        np.testing.assert_allclose(
            got, tiny_ranker.rank(request.prompt, request.candidates), atol=1e-4
        )


def test_chunked_packing_and_duplicates(tiny_loaded, tiny_ranker: LLMRanker) -> None:
    """Tiny packing chunks and duplicate candidates change nothing."""
    ranker = LLMRanker(
        tiny_loaded.model,
        tiny_loaded.tokenizer,
        "t",
        RankerConfig(max_packed_tokens=3, score_cache_size=0, prefix_cache_size=0),
    )
    cands = [*CANDS[:3], CANDS[1]]
    got = ranker.rank(PROMPT, cands)
    np.testing.assert_allclose(got, tiny_ranker.rank(PROMPT, cands), atol=1e-4)
    assert got[1] == got[-1]


def test_deterministic_and_score_cache_hits(tiny_ranker: LLMRanker) -> None:
    """A repeated call is served from the score cache with identical values."""
    first = tiny_ranker.rank(PROMPT, CANDS)
    hits = tiny_ranker.scores.hits
    second = tiny_ranker.rank(PROMPT, CANDS)
    assert tiny_ranker.scores.hits == hits + len(CANDS)
    np.testing.assert_array_equal(first, second)
    uncached = LLMRanker(
        tiny_ranker.model,
        tiny_ranker.tokenizer,
        "x",
        RankerConfig(score_cache_size=0, prefix_cache_size=0),
    )
    np.testing.assert_array_equal(uncached.rank(PROMPT, CANDS), uncached.rank(PROMPT, CANDS))


def test_copy_probe_prefers_repeated_item(tiny_ranker: LLMRanker) -> None:
    """An item the user viewed three times outranks an unrelated one on the tiny model."""
    prompt = (
        "Viewed: blue denim jacket\nViewed: blue denim jacket\nViewed: blue denim jacket\nViewed: "
    )
    scores = tiny_ranker.rank(prompt, ["blue denim jacket", "tax software license"])
    assert scores[0] > scores[1]


def test_explain_returns_text(tiny_loaded) -> None:
    """Explanation generation returns a single non-empty line."""
    ranker = LLMRanker(
        tiny_loaded.model, tiny_loaded.tokenizer, "t", RankerConfig(explain_max_new_tokens=8)
    )
    text = ranker.explain(PROMPT, "phone case")
    assert isinstance(text, str) and text and "\n" not in text


@pytest.mark.parametrize(
    ("weight", "normalise"), [(1.0, True), (0.5, True), (1.0, False)], ids=["pmi", "half", "sum"]
)
def test_calibrated_rank_equals_conditional_minus_neutral(
    tiny_loaded, weight: float, normalise: bool
) -> None:
    """Calibrated scores equal score_naive(prompt) - weight * score_naive(cue line) (oracle)."""
    config = RankerConfig(calibration_weight=weight, length_normalise=normalise)
    ranker = LLMRanker(tiny_loaded.model, tiny_loaded.tokenizer, "t", config)
    neutral = "The next item the user wants is:\n"
    assert neutral_prompt(PROMPT) == neutral
    expected = ranker.score_naive(PROMPT, CANDS) - weight * ranker.score_naive(neutral, CANDS)
    np.testing.assert_allclose(ranker.rank(PROMPT, CANDS), expected, atol=1e-4)
    if not normalise:  # sums are length-normalised means times the token counts
        counts = np.array([len(ranker.encode_candidate(c)) for c in CANDS])
        means = LLMRanker(tiny_loaded.model, tiny_loaded.tokenizer, "t").loglik(PROMPT, CANDS)
        np.testing.assert_allclose(ranker.loglik(PROMPT, CANDS), means * counts, atol=1e-3)


def test_neutral_scores_are_cached_across_users(tiny_ranker: LLMRanker) -> None:
    """A second user's prompt with the same cue reuses every cached neutral score."""
    tiny_ranker.rank(PROMPT, CANDS)
    assert len(tiny_ranker.neutral_scores) == len(CANDS)
    hits = tiny_ranker.neutral_scores.hits
    other = "The user likes gardening.\nThe next item the user wants is:\n"
    tiny_ranker.rank(other, CANDS)
    assert tiny_ranker.neutral_scores.hits == hits + len(CANDS)
    assert len(tiny_ranker.neutral_scores) == len(CANDS)


def test_uncalibrated_config_gives_loglik(tiny_loaded) -> None:
    """calibrate=False (or weight 0) makes rank equal the plain log-likelihood."""
    for config in (RankerConfig(calibrate=False), RankerConfig(calibration_weight=0.0)):
        ranker = LLMRanker(tiny_loaded.model, tiny_loaded.tokenizer, "t", config)
        np.testing.assert_array_equal(ranker.rank(PROMPT, CANDS), ranker.loglik(PROMPT, CANDS))
        assert len(ranker.neutral_scores) == 0
    with pytest.raises(ValueError, match="calibration_weight"):
        RankerConfig(calibration_weight=1.5)


def test_concurrent_rank_calls_match_sequential(tiny_ranker: LLMRanker) -> None:
    """Threads ranking different prompts at once get the sequential results."""
    prompts = [f"The user bought item {k}.\nThe next item the user wants is:\n" for k in range(4)]
    got: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        got[k] = tiny_ranker.rank(prompts[k], CANDS)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fresh = LLMRanker(tiny_ranker.model, tiny_ranker.tokenizer, "fresh")
    for k, prompt in enumerate(prompts):
        np.testing.assert_allclose(got[k], fresh.rank(prompt, CANDS), atol=1e-6)
