"""Tests of the BM25 document index and corpus loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import DocumentNotFound, DocumentReadError
from agent.tools.search import Document, DocumentIndex, load_corpus, write_corpus_jsonl

DOCS = [
    Document("ed", "Ed Wood", "Ed Wood was an American filmmaker, actor and writer."),
    Document("paris", "Paris", "Paris is the capital and most populous city of France."),
    Document("berlin", "Berlin", "Berlin is the capital of Germany and its largest city."),
]


def test_search_ranks_the_matching_document_first() -> None:
    """A query with a document's distinctive words returns that document at rank 1."""
    idx = DocumentIndex(DOCS)
    hits = idx.search("capital of France", k=3)
    assert hits[0].doc_id == "paris"
    assert "France" in hits[0].snippet
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_drops_non_matching_documents_and_respects_k() -> None:
    """Documents sharing no term with the query are not returned; k caps the hit count."""
    idx = DocumentIndex(DOCS)
    assert [h.doc_id for h in idx.search("filmmaker", k=3)] == ["ed"]
    assert len(idx.search("capital city", k=1)) == 1
    assert idx.search("zzzz", k=3) == []
    assert DocumentIndex([]).search("anything") == []


def test_read_document_returns_full_text_or_raises() -> None:
    """read_document returns the stored document and raises DocumentNotFound for unknown ids."""
    idx = DocumentIndex(DOCS)
    assert idx.read_document("berlin") == DOCS[2]
    with pytest.raises(DocumentNotFound):
        idx.read_document("rome")


def test_snippet_is_window_around_query_terms() -> None:
    """For a long text the snippet is the window containing the query terms."""
    text = "filler " * 200 + "the secret keyword lives here " + "filler " * 200
    idx = DocumentIndex([Document("long", "Long", text)], snippet_chars=60)
    (hit,) = idx.search("secret keyword", k=1)
    assert "secret keyword" in hit.snippet
    assert len(hit.snippet) <= 60


def test_corpus_jsonl_round_trip_and_folder(tmp_path: Path) -> None:
    """write_corpus_jsonl/load_corpus round-trip; a folder corpus indexes each readable file."""
    path = tmp_path / "c.jsonl"
    assert write_corpus_jsonl(DOCS, path) == 3
    assert load_corpus(path) == DOCS
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha text")
    (folder / "b.json").write_text(json.dumps({"k": "beta"}))
    (folder / "skip.xyz").write_text("unsupported")
    docs = load_corpus(folder)
    assert sorted(d.doc_id for d in docs) == ["a.txt", "b.json"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "no id"}\n')
    with pytest.raises(DocumentReadError, match="bad corpus line"):
        load_corpus(bad)
