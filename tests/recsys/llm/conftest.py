"""Fixtures of the frozen-LLM tests: the tiny packaged model, converted once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.llm.provider import LoadedModel, load_model
from recsys.llm.ranker import LLMRanker, RankerConfig


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session cache directory for converted models."""
    return tmp_path_factory.mktemp("llm-cache")


@pytest.fixture(scope="session")
def tiny_loaded(tiny_cache: Path) -> LoadedModel:
    """SmolLM2-135M from its pip package through the real provider, offline, in float32."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        return load_model("smollm2-135m", cache_dir=tiny_cache, dtype="float32")


@pytest.fixture()
def tiny_ranker(tiny_loaded: LoadedModel) -> LLMRanker:
    """A fresh ranker (empty caches) over the session's tiny model."""
    return LLMRanker(
        tiny_loaded.model, tiny_loaded.tokenizer, "smollm2-135m:float32", RankerConfig()
    )
