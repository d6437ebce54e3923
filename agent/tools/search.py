"""Full-text search over a document collection (BM25 via bm25s) plus read-document.

A corpus is a JSONL file with one `{"doc_id", "title", "text"}` object per line, or a folder
whose readable files (see `readers`) become one document each (doc_id = relative path).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np

from agent.errors import DocumentNotFound, DocumentReadError

__all__ = ["Document", "DocumentIndex", "SearchHit", "load_corpus", "write_corpus_jsonl"]

logger = logging.getLogger(__name__)
_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Document:
    """One searchable document."""

    doc_id: str
    """Unique id within the collection."""
    title: str
    """Title (indexed together with the text)."""
    text: str
    """Full text."""


@dataclass(frozen=True)
class SearchHit:
    """One search result: id, title, a snippet around the best-matching terms and the score."""

    doc_id: str
    title: str
    snippet: str
    score: float


def _tokenize(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def _snippet(text: str, terms: set[str], width: int) -> str:
    """The `width`-character window of `text` that contains the most query terms."""
    if len(text) <= width:
        return text
    best_start, best_hits = 0, -1
    for start in range(0, len(text) - width + 1, max(1, width // 4)):
        hits = sum(1 for t in _tokenize(text[start : start + width]) if t in terms)
        if hits > best_hits:
            best_start, best_hits = start, hits
    return text[best_start : best_start + width].strip()


class DocumentIndex:
    """BM25 index over documents; `search` ranks, `read_document` returns the full text."""

    def __init__(self, documents: Sequence[Document], snippet_chars: int = 300) -> None:
        ids = [d.doc_id for d in documents]
        assert len(set(ids)) == len(ids), "document ids must be unique"
        self._docs = list(documents)
        self._by_id = {d.doc_id: d for d in documents}
        self._snippet_chars = snippet_chars
        self._bm25: bm25s.BM25 | None = None
        if documents:
            self._bm25 = bm25s.BM25()
            corpus_tokens = [_tokenize(f"{d.title} {d.text}") or ["_"] for d in documents]
            self._bm25.index(corpus_tokens, show_progress=False)

    def __len__(self) -> int:
        return len(self._docs)

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """Top-`k` documents for `query` by BM25 score (documents with score 0 are dropped)."""
        terms = _tokenize(query)
        if self._bm25 is None or not terms or k <= 0:
            return []
        k = min(k, len(self._docs))
        idx, scores = self._bm25.retrieve([terms], k=k, show_progress=False, n_threads=1)
        term_set = set(terms)
        hits: list[SearchHit] = []
        for i, s in zip(np.asarray(idx)[0], np.asarray(scores)[0], strict=True):
            if s <= 0:
                continue
            d = self._docs[int(i)]
            snip = _snippet(d.text, term_set, self._snippet_chars)
            hits.append(SearchHit(d.doc_id, d.title, snip, float(s)))
        return hits

    def read_document(self, doc_id: str) -> Document:
        """The document with that id; raises `DocumentNotFound`."""
        try:
            return self._by_id[doc_id]
        except KeyError:
            raise DocumentNotFound(f"no document with id {doc_id!r}") from None


def write_corpus_jsonl(documents: Iterable[Document], path: Path) -> int:
    """Write documents as JSONL (the format `load_corpus` reads); returns the count."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for d in documents:
            f.write(json.dumps({"doc_id": d.doc_id, "title": d.title, "text": d.text}) + "\n")
            n += 1
    return n


def load_corpus(path: Path) -> list[Document]:
    """Documents from a JSONL file or from every readable file in a folder."""
    if path.is_file():
        docs: list[Document] = []
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    docs.append(
                        Document(str(obj["doc_id"]), str(obj.get("title", "")), obj["text"])
                    )
                except (json.JSONDecodeError, KeyError) as exc:
                    raise DocumentReadError(f"{path}:{line_no}: bad corpus line ({exc})") from exc
        return docs
    if path.is_dir():
        from agent.tools.readers import read_file

        docs = []
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            try:
                text = read_file(p)
            except DocumentReadError as exc:
                logger.warning("skipping %s: %s", p, exc)
                continue
            docs.append(Document(str(p.relative_to(path)), p.stem, text))
        return docs
    raise DocumentReadError(f"corpus not found: {path}")
