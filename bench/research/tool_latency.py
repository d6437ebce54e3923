"""Tool-call latency over MCP: stdio subprocess vs in-process, same server and calls.

`measure_tool_latency()` returns a JSON-able dict with per-transport medians/p90 (ms) and
the stdio/in-process ratio; the lead's benchmark CLI prints it.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.tools.search import Document, write_corpus_jsonl

__all__ = ["measure_tool_latency"]


def _synthetic_corpus(n_docs: int) -> list[Document]:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]
    return [
        Document(
            f"doc{i}",
            f"Title {i}",
            " ".join(words[(i * 7 + j) % len(words)] for j in range(40)) + f" token{i}",
        )
        for i in range(n_docs)
    ]


def _time_calls(call: Callable[[], Any], n: int) -> list[float]:
    call()  # warm-up
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _summary(ms: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(ms, n=10)
    return {"median_ms": statistics.median(ms), "p90_ms": qs[-1], "mean_ms": statistics.fmean(ms)}


def measure_tool_latency(
    n_calls: int = 50, n_docs: int = 1000, corpus: Path | None = None
) -> dict[str, Any]:
    """Median/p90 latency of `search` and `math` calls over stdio and in-process MCP."""
    from agent.tools.client import ToolClient
    from agent.tools.config import ToolServerConfig

    with tempfile.TemporaryDirectory() as tmp:
        if corpus is None:
            corpus = Path(tmp) / "corpus.jsonl"
            write_corpus_jsonl(_synthetic_corpus(n_docs), corpus)
        results: dict[str, Any] = {"n_calls": n_calls, "corpus": str(corpus)}
        clients = {
            "in_process": ToolClient.in_process(ToolServerConfig(corpus=corpus)),
            "stdio": ToolClient.stdio(corpus=corpus),
        }
        for label, client in clients.items():
            t0 = time.perf_counter()
            with client as tc:
                connect_ms = (time.perf_counter() - t0) * 1000.0
                search = _time_calls(
                    functools.partial(tc.call_tool, "search", {"query": "gamma token7", "k": 5}),
                    n_calls,
                )
                math = _time_calls(
                    functools.partial(tc.call_tool, "math", {"expression": "2**10 + 3"}), n_calls
                )
            results[label] = {
                "connect_ms": connect_ms,
                "search": _summary(search),
                "math": _summary(math),
            }
    for tool in ("search", "math"):
        results[f"{tool}_stdio_over_inprocess_median"] = (
            results["stdio"][tool]["median_ms"] / results["in_process"][tool]["median_ms"]
        )
    return results
