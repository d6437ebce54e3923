"""Settings: MEMENTO_* environment, production key gate, core factory loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.app import create_app, load_core_factory
from serving.core import build_core
from serving.errors import InsecureSettingsError
from serving.settings import DEFAULT_API_KEY, DEFAULT_READ_API_KEY, ServingSettings
from tests.serving.fake_core import build_fake_core


def test_settings_read_memento_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field comes from its MEMENTO_ variable."""
    monkeypatch.setenv("MEMENTO_API_KEY", "s3cret")
    monkeypatch.setenv("MEMENTO_READ_API_KEY", "r3ad")
    monkeypatch.setenv("MEMENTO_PUBLIC_RECOMMEND", "true")
    monkeypatch.setenv("MEMENTO_PORT", "9123")
    monkeypatch.setenv("MEMENTO_QUEUE_SIZE", "7")
    monkeypatch.setenv("MEMENTO_DB_PATH", "/tmp/x.sqlite3")
    monkeypatch.setenv("MEMENTO_MODEL_URI", "models:/memento@champion")
    monkeypatch.setenv("MEMENTO_LLM", "smollm2-135m")
    monkeypatch.setenv("MEMENTO_FRESH__TEXT__KIND", "hashing")
    s = ServingSettings()
    assert (s.llm, s.fresh.text.kind) == ("smollm2-135m", "hashing")
    assert s.api_key.get_secret_value() == "s3cret" and "s3cret" not in repr(s)
    assert s.read_api_key.get_secret_value() == "r3ad" and "r3ad" not in repr(s)
    assert s.public_recommend is True
    assert (s.port, s.queue_size, s.db_path) == (9123, 7, Path("/tmp/x.sqlite3"))
    assert s.model_uri == "models:/memento@champion"
    monkeypatch.setenv("MEMENTO_LLM", "gpt-9")
    with pytest.raises(ValueError, match="llm"):
        ServingSettings()


def test_fresh_model_is_the_preset_with_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh model is `MEMENTO_PRESET` with `MEMENTO_FRESH__<PART>__<FIELD>` written over it
    (typed, its scorer-dependent fields derived); an unknown field, an unknown preset, a
    retired flat variable or argument are refused naming what to set."""
    from recsys.presets import offline_replay, online

    assert ServingSettings().fresh == online()
    monkeypatch.setenv("MEMENTO_FRESH__RECOMMEND__SCORER", "items")
    monkeypatch.setenv("MEMENTO_FRESH__LEARNER__POLICY__ALPHA", "0.3")
    s = ServingSettings()
    assert s.fresh.recommend.scorer == "items" and s.fresh.learner.policy.alpha == 0.3
    assert s.fresh.learner.listwise_weight == 1.0 and s.fresh.case_bank.index == "hnsw"
    assert s.fresh.learner.q.feature_dim == online("items").learner.q.feature_dim
    monkeypatch.setenv("MEMENTO_PRESET", "offline-replay")
    assert ServingSettings().fresh.recommend.top_k == offline_replay("items").recommend.top_k
    monkeypatch.setenv("MEMENTO_FRESH__RECOMMEND__TOPK", "3")
    with pytest.raises(ValueError, match="MEMENTO_FRESH__RECOMMEND__TOPK"):
        ServingSettings()
    monkeypatch.delenv("MEMENTO_FRESH__RECOMMEND__TOPK")
    monkeypatch.setenv("MEMENTO_PRESET", "nope")
    with pytest.raises(ValueError, match="online"):
        ServingSettings()
    monkeypatch.setenv("MEMENTO_PRESET", "online")
    monkeypatch.setenv("MEMENTO_SCORER", "items")
    with pytest.raises(ValueError, match="MEMENTO_FRESH__RECOMMEND__SCORER"):
        ServingSettings()
    monkeypatch.delenv("MEMENTO_SCORER")
    with pytest.raises(ValueError, match="num_chosen -> MEMENTO_FRESH__RECOMMEND__NUM_CHOSEN"):
        ServingSettings(num_chosen=3)  # type: ignore[call-arg]


@pytest.mark.parametrize("key", ["", "   ", DEFAULT_API_KEY, DEFAULT_READ_API_KEY])
def test_production_refuses_weak_keys_in_create_app(key: str) -> None:
    """`create_app` raises for production with an empty or default write or read key."""
    strong = {"api_key": "a-real-key", "read_api_key": "a-real-read-key"}
    with pytest.raises(InsecureSettingsError, match=r"refusing to start.*MEMENTO_API_KEY"):
        create_app(ServingSettings(production=True, **{**strong, "api_key": key}))
    with pytest.raises(InsecureSettingsError, match=r"refusing to start.*MEMENTO_READ_API_KEY"):
        create_app(ServingSettings(production=True, **{**strong, "read_api_key": key}))
    create_app(ServingSettings(production=False, api_key=key, read_api_key=key))
    create_app(ServingSettings(production=True, **strong))


def test_production_public_mode_needs_no_read_key() -> None:
    """With MEMENTO_PUBLIC_RECOMMEND the read key is unused, so a default one is accepted."""
    weak_read = {"api_key": "a-real-key", "read_api_key": DEFAULT_READ_API_KEY}
    create_app(ServingSettings(production=True, public_recommend=True, **weak_read))
    with pytest.raises(InsecureSettingsError, match="MEMENTO_API_KEY"):
        create_app(ServingSettings(production=True, public_recommend=True, api_key=""))


def test_core_factory_path_is_resolved() -> None:
    """`MEMENTO_CORE` names `module:function`; malformed paths are rejected."""
    assert load_core_factory("tests.serving.fake_core:build_fake_core") is build_fake_core
    assert load_core_factory(ServingSettings().core) is build_core  # the default
    with pytest.raises(ValueError, match="module:function"):
        load_core_factory("tests.serving.fake_core")
