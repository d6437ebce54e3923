"""Settings: MEMENTO_* environment, production key gate, core factory loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.app import create_app, load_core_factory
from serving.demo_core import build_demo_core
from serving.errors import InsecureSettingsError
from serving.settings import DEFAULT_API_KEY, ServingSettings
from serving.soft_q_core import build_soft_q_core


def test_settings_read_memento_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field comes from its MEMENTO_ variable."""
    monkeypatch.setenv("MEMENTO_API_KEY", "s3cret")
    monkeypatch.setenv("MEMENTO_PORT", "9123")
    monkeypatch.setenv("MEMENTO_QUEUE_SIZE", "7")
    monkeypatch.setenv("MEMENTO_DB_PATH", "/tmp/x.sqlite3")
    monkeypatch.setenv("MEMENTO_MODEL_URI", "models:/memento@champion")
    monkeypatch.setenv("MEMENTO_LLM", "smollm2-135m")
    monkeypatch.setenv("MEMENTO_TEXT_ENCODER", "hashing")
    s = ServingSettings()
    assert (s.llm, s.text_encoder) == ("smollm2-135m", "hashing")
    assert s.api_key.get_secret_value() == "s3cret" and "s3cret" not in repr(s)
    assert (s.port, s.queue_size, s.db_path) == (9123, 7, Path("/tmp/x.sqlite3"))
    assert s.model_uri == "models:/memento@champion"
    monkeypatch.setenv("MEMENTO_LLM", "gpt-9")
    with pytest.raises(ValueError, match="llm"):
        ServingSettings()


@pytest.mark.parametrize("key", ["", "   ", DEFAULT_API_KEY])
def test_production_refuses_weak_keys_in_create_app(key: str) -> None:
    """`create_app` raises for production with an empty or default key, not otherwise."""
    with pytest.raises(InsecureSettingsError, match="refusing to start"):
        create_app(ServingSettings(production=True, api_key=key))
    create_app(ServingSettings(production=False, api_key=key))
    create_app(ServingSettings(production=True, api_key="a-real-key"))


def test_core_factory_path_is_resolved() -> None:
    """`MEMENTO_CORE` names `module:function`; malformed paths are rejected."""
    assert load_core_factory("serving.demo_core:build_demo_core") is build_demo_core
    assert load_core_factory(ServingSettings().core) is build_soft_q_core  # the default
    with pytest.raises(ValueError, match="module:function"):
        load_core_factory("serving.demo_core")
