"""Likelihood ranking with a cached, packed prefix on the real tiny packaged model."""

from __future__ import annotations

import numpy as np

from recsys.llm.protocol import FrozenLLM, RankRequest
from recsys.llm.ranker import LLMRanker, RankerConfig

PROMPT = "The user bought a phone and then looked at chargers.\nThe next item the user wants is:\n"
CANDS = ["phone case", "wireless charger for phones", "red summer dress", "garden hose", "a"]


def test_tiny_model_ranks_and_satisfies_protocol(tiny_ranker: LLMRanker) -> None:
    """The tiny model loaded offline returns one finite negative score per candidate."""
    assert isinstance(tiny_ranker, FrozenLLM)
    scores = tiny_ranker.rank(PROMPT, CANDS)
    assert scores.shape == (len(CANDS),)
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)


def test_packed_prefix_scores_match_naive_full_sequence(tiny_ranker: LLMRanker) -> None:
    """KV-cached packed scoring equals one full forward per candidate (fp32 oracle)."""
    fast = tiny_ranker.rank(PROMPT, CANDS)
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
    got = tiny_ranker.rank(PROMPT, ["wireless charger for phones"])[0]
    assert abs(got - expected) < 1e-4


def test_rank_batch_matches_rank(tiny_ranker: LLMRanker) -> None:
    """Row-batched requests of different lengths give the same scores as one-by-one ranking."""
    requests = [
        RankRequest(PROMPT, tuple(CANDS)),
        RankRequest("I like cooking.\nNext:\n", ("frying pan", "knife set", "tv")),
        RankRequest("Books.\n", ("novel",)),
    ]
    batched = tiny_ranker.rank_batch(requests)
    for request, got in zip(requests, batched, strict=True):
        np.testing.assert_allclose(
            got, tiny_ranker.score_naive(request.prompt, request.candidates), atol=1e-4
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
