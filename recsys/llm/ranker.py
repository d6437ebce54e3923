"""Rank candidates by their log-likelihood after a shared, cached prompt prefix.

`loglik`: one prefix forward (its KV cache kept in a small LRU), then ALL candidates in one
packed continuation forward: the candidates' tokens are laid side by side in a single row,
each with positions restarting after the prefix and a block-causal 4D mask so a candidate only
sees the prefix and its own earlier tokens (tree attention). No prefix copy per candidate and
no padding; logits are computed only at the positions that predict candidate tokens.
Log-likelihood = mean log-prob of the candidate's tokens (`length_normalise`, the default) or
their sum; deterministic.

`rank` adds contextual calibration (on by default): generic items ("汽车轮胎", "连衣裙") have a
high likelihood whatever the user did, so a small model ranks them above the related item.
The score is a pointwise mutual information between candidate and user context:

    score(c) = loglik(c | prompt) - calibration_weight * loglik(c | neutral prompt)

where the neutral prompt is the same template with no user history and no cases: the prompt's
last line, i.e. the cue (`recsys.llm.prompts.neutral_prompt`). This is the content-free input
of "Calibrate Before Use" (Zhao et al., ICML 2021) applied to scoring, i.e. domain-conditional
PMI (Holtzman et al., "Surface Form Competition", EMNLP 2021). The neutral log-likelihoods do
not depend on the user, so they are computed once per candidate with the same packed-prefix
machinery and kept in their own LRU (`calibration_cache_size`): the extra cost is amortised.
A prompt that is a single line is its own neutral prompt; it is then scored uncalibrated.

`rank_batch`: several requests as rows of one padded forward (prefix + packed candidates),
calibrated the same way. All public methods hold one lock (thread-safe for serving).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys.llm.prompts import neutral_prompt
from recsys.llm.protocol import RankRequest
from recsys.llm.score_cache import ScoreCache, prompt_key, score_key

__all__ = ["LLMRanker", "RankerConfig"]

log = logging.getLogger(__name__)

_KV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class RankerConfig:
    """Settings of the likelihood ranker."""

    score_cache_size: int = 100_000
    """Entries in the (model, prompt, candidate) score LRU; 0 disables it."""
    prefix_cache_size: int = 4
    """Prompts whose prefix KV cache is kept for reuse by later calls."""
    max_packed_tokens: int = 2048
    """Most candidate tokens packed into one continuation forward (larger lists are chunked)."""
    max_candidate_tokens: int = 32
    """Candidate texts are cut to this many tokens."""
    batch_requests: int = 8
    """Requests per padded forward in `rank_batch`."""
    explain_max_new_tokens: int = 48
    """Token budget of a generated explanation."""
    length_normalise: bool = True
    """Log-likelihood = mean log-prob per candidate token (True) or the sum (False)."""
    calibrate: bool = True
    """`rank` subtracts the candidate's log-likelihood after the neutral prompt (PMI)."""
    calibration_weight: float = 1.0
    """Weight in [0, 1] of the neutral log-likelihood (0 = uncalibrated, 1 = full PMI)."""
    calibration_cache_size: int = 100_000
    """Entries in the (model, neutral prompt, candidate) LRU; independent of the score cache."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.calibration_weight <= 1.0:
            raise ValueError(f"calibration_weight {self.calibration_weight} not in [0, 1]")


class LLMRanker:
    """A frozen causal LM used as a likelihood ranker (implements `FrozenLLM`)."""

    def __init__(
        self, model: Any, tokenizer: Any, model_id: str, config: RankerConfig | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self._model_id = model_id
        self.config = config or RankerConfig()
        self.scores = ScoreCache(self.config.score_cache_size)
        self.neutral_scores = ScoreCache(self.config.calibration_cache_size)
        self._lock = threading.RLock()
        self._prefixes: OrderedDict[str, tuple[list[int], _KV, torch.Tensor]] = OrderedDict()
        self._decoder = model.base_model
        self._head = model.get_output_embeddings()

    @classmethod
    def from_name(
        cls,
        name: str,
        cache_dir: Path | None = None,
        dtype: str = "bfloat16",
        device: str = "cpu",
        config: RankerConfig | None = None,
    ) -> LLMRanker:
        """Load a model through the provider (packaged name, folder or hub id) and wrap it."""
        from recsys.llm.provider import load_model

        loaded = load_model(name, cache_dir=cache_dir, dtype=dtype, device=device)
        return cls(loaded.model, loaded.tokenizer, f"{name}:{dtype}", config)

    @property
    def model_id(self) -> str:
        """Identifier used in score-cache keys."""
        return self._model_id

    @property
    def device(self) -> torch.device:
        """Device of the model parameters."""
        return next(self.model.parameters()).device

    # ---- tokenisation ------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Token count of `text` (a `PromptBuilder` counter)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, prompt: str) -> list[int]:
        """Prompt token ids (with the tokenizer's special prefix tokens, if any)."""
        ids: list[int] = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        assert ids, "empty prompt"
        return ids

    def encode_candidate(self, text: str) -> list[int]:
        """Candidate token ids, no special tokens, cut to `max_candidate_tokens`."""
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"candidate text {text!r} has no tokens")
        return ids[: self.config.max_candidate_tokens]

    # ---- scoring -----------------------------------------------------------------------
    def _mean_logprob(
        self, hidden: torch.Tensor, targets: torch.Tensor, owner: torch.Tensor, n: int
    ) -> torch.Tensor:
        """Mean (or sum, see `length_normalise`) over each owner's targets of log p(target | row).

        hidden (m, d), targets (m,), owner (m,) in [0, n) -> (n,) float64.
        """
        assert hidden.shape[0] == targets.shape[0] == owner.shape[0], f"{hidden.shape=}"
        logits = self._head(hidden).float()
        logp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0].double()
        total = torch.zeros(n, dtype=torch.float64, device=logp.device).index_add_(0, owner, logp)
        if not self.config.length_normalise:
            return total
        count = torch.bincount(owner, minlength=n).to(torch.float64)
        return total / count

    def _prefix(self, prompt: str, pkey: str) -> tuple[list[int], _KV, torch.Tensor]:
        """(prompt ids, per-layer KV of the prompt, last hidden state (d,)), LRU-cached."""
        hit = self._prefixes.get(pkey)
        if hit is not None:
            self._prefixes.move_to_end(pkey)
            return hit
        ids = self.encode_prompt(prompt)
        out = self._decoder(
            input_ids=torch.tensor([ids], device=self.device), use_cache=True, return_dict=True
        )
        kv: _KV = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        entry = (ids, kv, out.last_hidden_state[0, -1])
        if self.config.prefix_cache_size > 0:
            self._prefixes[pkey] = entry
            while len(self._prefixes) > self.config.prefix_cache_size:
                self._prefixes.popitem(last=False)
        return entry

    def _score_packed(
        self, n_prefix: int, kv: _KV, last_hidden: torch.Tensor, cands: list[list[int]]
    ) -> torch.Tensor:
        """Scores (len(cands),) of candidates packed into one row after a cached prefix."""
        from recsys.llm import hf

        dev, n = self.device, len(cands)
        flat = [t for c in cands for t in c]
        total = len(flat)
        owner = torch.tensor([i for i, c in enumerate(cands) for _ in c], device=dev)
        offset = torch.tensor([j for c in cands for j in range(len(c))], device=dev)
        starts = torch.arange(total, device=dev) - offset
        first = torch.tensor([c[0] for c in cands], device=dev)
        # first token of every candidate is predicted by the prefix's last position
        lp_first_hidden = last_hidden[None].expand(n, -1)
        rows = [lp_first_hidden]
        targets = [first]
        owners = [torch.arange(n, device=dev)]
        inner = offset[1:] > 0  # position k predicts token k+1 of the same candidate
        if bool(inner.any()):
            dtype = last_hidden.dtype
            q = torch.arange(total, device=dev)
            allowed = (q[None, :] <= q[:, None]) & (starts[None, :] == starts[:, None])
            block = torch.full((total, total), torch.finfo(dtype).min, dtype=dtype, device=dev)
            block.masked_fill_(allowed, 0.0)
            mask = torch.cat([torch.zeros(total, n_prefix, dtype=dtype, device=dev), block], 1)
            out = self._decoder(
                input_ids=torch.tensor([flat], device=dev),
                attention_mask=mask[None, None],
                position_ids=(n_prefix + offset)[None],
                past_key_values=hf.make_prefix_cache(kv),
                use_cache=True,
                return_dict=True,
            )
            keep = torch.nonzero(inner)[:, 0]
            rows.append(out.last_hidden_state[0, keep])
            targets.append(torch.tensor(flat, device=dev)[keep + 1])
            owners.append(owner[keep])
        return self._mean_logprob(torch.cat(rows), torch.cat(targets), torch.cat(owners), n)

    def _chunks(self, cands: list[list[int]]) -> list[list[int]]:
        """Index groups of candidates whose token total fits `max_packed_tokens`."""
        groups: list[list[int]] = [[]]
        used = 0
        for i, c in enumerate(cands):
            if groups[-1] and used + len(c) > self.config.max_packed_tokens:
                groups.append([])
                used = 0
            groups[-1].append(i)
            used += len(c)
        return groups

    def _cached_loglik(
        self, prompt: str, candidates: Sequence[str], cache: ScoreCache
    ) -> np.ndarray:
        """Log-likelihoods (n,) of the candidates after `prompt`, through `cache`."""
        pkey = prompt_key(self._model_id, prompt)
        keys = [score_key(pkey, c) for c in candidates]
        scores = np.full(len(candidates), np.nan)
        todo: dict[str, int] = {}
        for i, key in enumerate(keys):
            cached = cache.get(key) if cache.capacity else None
            if cached is not None:
                scores[i] = cached
            elif key not in todo:
                todo[key] = i
        if todo:
            ids, kv, last = self._prefix(prompt, pkey)
            order = list(todo.values())
            toks = [self.encode_candidate(candidates[i]) for i in order]
            for group in self._chunks(toks):
                got = self._score_packed(len(ids), kv, last, [toks[g] for g in group])
                for g, value in zip(group, got.tolist(), strict=True):
                    cache.put(keys[order[g]], value)
                    scores[order[g]] = value
            for i, key in enumerate(keys):  # duplicates of computed candidates
                if np.isnan(scores[i]):
                    scores[i] = scores[todo[key]]
        return scores

    def _calibration(self, prompt: str, candidates: Sequence[str]) -> np.ndarray | None:
        """`calibration_weight` x neutral log-likelihoods (n,), or None when not calibrating."""
        if not self.config.calibrate or self.config.calibration_weight == 0.0:
            return None
        neutral = neutral_prompt(prompt)
        if neutral == prompt:
            return None
        base = self._cached_loglik(neutral, candidates, self.neutral_scores)
        return self.config.calibration_weight * base

    @torch.inference_mode()
    def loglik(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """Uncalibrated scores (n,) float64: mean (or summed) log-prob of each candidate's
        tokens after `prompt` (score-cached)."""
        with self._lock:
            return self._cached_loglik(prompt, candidates, self.scores)

    @torch.inference_mode()
    def rank(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """Scores (n,) float64, higher = better: `loglik` minus the weighted neutral-prompt
        log-likelihood when `calibrate` (see the module docstring)."""
        with self._lock:
            scores = self._cached_loglik(prompt, candidates, self.scores)
            calibration = self._calibration(prompt, candidates)
            return scores if calibration is None else scores - calibration

    @torch.inference_mode()
    def rank_batch(self, requests: Sequence[RankRequest]) -> list[np.ndarray]:
        """`rank` for many requests: rows of (prefix + packed candidates), one forward per
        `batch_requests` rows (no KV cache needed: everything is in one pass)."""
        results: list[np.ndarray] = []
        step = max(1, self.config.batch_requests)
        with self._lock:
            for start in range(0, len(requests), step):
                results.extend(self._rank_rows(list(requests[start : start + step])))
            for i, request in enumerate(requests):
                calibration = self._calibration(request.prompt, request.candidates)
                if calibration is not None:
                    results[i] = results[i] - calibration
        return results

    def _rank_rows(self, requests: list[RankRequest]) -> list[np.ndarray]:
        """One padded forward over len(requests) rows; returns one score array per request."""
        dev = self.device
        prompts = [self.encode_prompt(r.prompt) for r in requests]
        cands = [[self.encode_candidate(c) for c in r.candidates] for r in requests]
        lengths = [len(p) + sum(len(c) for c in cs) for p, cs in zip(prompts, cands, strict=True)]
        width = max(lengths)
        dtype = next(self.model.parameters()).dtype
        n_rows = len(requests)
        input_ids = torch.zeros(n_rows, width, dtype=torch.long)
        position = torch.zeros(n_rows, width, dtype=torch.long)
        group = torch.full((n_rows, width), -1, dtype=torch.long)  # -1 prefix, k candidate k
        order = torch.arange(width)
        row_i, pos_i, tgt_i, own_i = [], [], [], []
        for r, (p, cs) in enumerate(zip(prompts, cands, strict=True)):
            flat = p + [t for c in cs for t in c]
            input_ids[r, : len(flat)] = torch.tensor(flat)
            position[r, : len(p)] = torch.arange(len(p))
            at = len(p)
            for k, c in enumerate(cs):
                position[r, at : at + len(c)] = torch.arange(len(p), len(p) + len(c))
                group[r, at : at + len(c)] = k
                for j, tok in enumerate(c):
                    row_i.append(r)
                    pos_i.append(len(p) - 1 if j == 0 else at + j - 1)
                    tgt_i.append(tok)
                    own_i.append((r, k))
                at += len(c)
            group[r, at:] = -2 - order[at:]  # padding: each its own group, sees itself only
        causal = order[None, :] <= order[:, None]
        same = group[:, None, :] == group[:, :, None]
        key_is_prefix = (group == -1)[:, None, :]
        allowed = causal[None] & (same | key_is_prefix)
        mask = torch.full((n_rows, 1, width, width), torch.finfo(dtype).min, dtype=dtype)
        mask.masked_fill_(allowed[:, None], 0.0)
        out = self._decoder(
            input_ids=input_ids.to(dev),
            attention_mask=mask.to(dev),
            position_ids=position.to(dev),
            use_cache=False,
            return_dict=True,
        )
        hidden = out.last_hidden_state[torch.tensor(row_i), torch.tensor(pos_i)]
        owner_ids = {key: i for i, key in enumerate(dict.fromkeys(own_i))}
        owner = torch.tensor([owner_ids[o] for o in own_i], device=dev)
        flat_scores = self._mean_logprob(
            hidden, torch.tensor(tgt_i, device=dev), owner, len(owner_ids)
        ).tolist()
        results = []
        for r, cs in enumerate(cands):
            results.append(np.array([flat_scores[owner_ids[(r, k)]] for k in range(len(cs))]))
        return results

    @torch.inference_mode()
    def score_naive(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """Reference uncalibrated scores (`loglik` semantics): one full forward of prompt +
        candidate per candidate (slow)."""
        with self._lock:
            ids = self.encode_prompt(prompt)
            out = []
            for text in candidates:
                cand = self.encode_candidate(text)
                seq = torch.tensor([ids + cand], device=self.device)
                logits = self.model(input_ids=seq, logits_to_keep=len(cand) + 1).logits[0]
                logp = torch.log_softmax(logits[:-1].float(), dim=-1)
                picked = logp.gather(1, torch.tensor(cand, device=self.device)[:, None]).double()
                out.append((picked.mean() if self.config.length_normalise else picked.sum()).item())
            return np.array(out)

    @torch.inference_mode()
    def explain(self, prompt: str, item: str) -> str:
        """A short greedy-generated reason for `item` after the ranking `prompt` (one line)."""
        from recsys.llm.prompts import explanation_prompt

        ids = torch.tensor(
            [self.encode_prompt(explanation_prompt(prompt, item))], device=self.device
        )
        with self._lock:
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=self.config.explain_max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        text: str = self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        return lines[0] if lines else ""
