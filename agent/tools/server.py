"""The MCP tool server (mcp 2.x `MCPServer`): search, read_document, read_file, math, run_python.

Run over stdio:            python -m agent.tools.server --corpus corpus.jsonl
Run over streamable HTTP:  python -m agent.tools.server --corpus c.jsonl --transport http
In-process (tests):        `ToolClient.in_process(cfg)` or `mcp.Client(build_server(cfg))`.
This module and `client` are the only mcp importers of the project.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from agent.errors import DocumentReadError, ToolFailure
from agent.tools import math_eval, readers, sandbox, web
from agent.tools.config import ToolServerConfig, TranscribeConfig
from agent.tools.search import DocumentIndex, load_corpus

__all__ = ["TOOL_NAMES", "build_server", "main"]

logger = logging.getLogger(__name__)
TOOL_NAMES = ("search", "read_document", "read_file", "math", "run_python")
F = TypeVar("F", bound=Callable[..., Any])
MATH_TIMEOUT_S = 5.0
"""Deadline of one `math` call; the evaluating child process is killed after it."""


def _domain_errors(fn: F) -> F:
    """Turn our `ToolFailure`s into mcp `ToolError`s so the message reaches the model."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ToolFailure as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def build_server(
    cfg: ToolServerConfig, index: DocumentIndex | None = None, name: str = "memento-tools"
) -> MCPServer:
    """An `MCPServer` with the tools of `cfg` (pass `index` to reuse an already built one)."""
    if index is None:
        docs = load_corpus(cfg.corpus) if cfg.corpus is not None else []
        index = DocumentIndex(docs, snippet_chars=cfg.snippet_chars)
    idx = index
    server: MCPServer = MCPServer(name, log_level="WARNING")
    # Evaluation runs in a killable child: a runaway expression costs at most its deadline.
    math_worker = math_eval.MathWorker(timeout_s=MATH_TIMEOUT_S)

    @_domain_errors
    def search(query: str, k: int = 5) -> dict[str, Any]:
        """Full-text (BM25) search over the document collection; returns ids, titles, snippets."""
        k = max(1, min(int(k), cfg.search_k_max))
        hits = idx.search(query, k)
        return {"query": query, "hits": [asdict(h) for h in hits]}

    @_domain_errors
    def read_document(doc_id: str, offset: int = 0) -> dict[str, Any]:
        """Full text of a document found by `search` (paged by `offset` for long documents)."""
        doc = idx.read_document(doc_id)
        offset = max(0, int(offset))
        end = offset + cfg.read_max_chars
        return {
            "doc_id": doc.doc_id,
            "title": doc.title,
            "text": doc.text[offset:end],
            "total_chars": len(doc.text),
            "next_offset": end if end < len(doc.text) else None,
        }

    @_domain_errors
    def read_file(path: str, member: str | None = None) -> dict[str, Any]:
        """Text of an attached file: PDF, DOCX, XLSX, PPTX, CSV/TSV, JSON/JSON-LD, XML, HTML,
        text and code, images (OCR). A .zip gives its file list; pass `member` (a name from that
        list) to read one file inside it. Audio is transcribed when the server has a
        transcription endpoint (else refused); video is not read (extract its audio first)."""
        if cfg.files_root is None:
            raise DocumentReadError("read_file is disabled: no attachments folder configured")
        target = readers.resolve_inside(cfg.files_root, path)
        transcriber = (
            functools.partial(readers.transcribe_audio, cfg=cfg.transcribe)
            if cfg.transcribe.url is not None
            else None
        )
        text = readers.read_file(
            target, max_chars=cfg.read_max_chars, member=member, transcriber=transcriber
        )
        return {"path": path, "member": member, "text": text}

    @_domain_errors
    def math(expression: str) -> dict[str, Any]:
        """Evaluate an arithmetic expression (+ - * / // % **, sqrt, log, sin, factorial, pi...)."""
        value = math_worker.evaluate(expression)
        return {"expression": expression, "value": repr(value)}

    @_domain_errors
    def run_python(code: str) -> dict[str, Any]:
        """Run Python code in a sandbox (no network, no files outside a scratch folder, time and
        memory caps; numpy and pandas available); attached files are read-only under
        /attachments/ (e.g. pandas.read_excel('/attachments/data.xlsx')); print what you need."""
        return asdict(sandbox.run_python(code, cfg.sandbox.with_attachments(cfg.files_root)))

    tools: list[Callable[..., Any]] = [search, read_document, read_file, math, run_python]
    if cfg.web_tools:  # off by default: only with --web-search URL / --web-fetch / enable_web

        @_domain_errors
        def web_search(query: str, k: int = 5) -> dict[str, Any]:
            """Search the web; returns titles, URLs and snippets (read a page with web_fetch)."""
            hits = web.web_search(query, k, cfg.web)
            return {"query": query, "results": [asdict(h) for h in hits]}

        @_domain_errors
        def web_fetch(url: str) -> dict[str, Any]:
            """Download a web page (http/https) and return its title and main text."""
            return asdict(web.web_fetch(url, cfg.web))

        tools += [fn for fn in (web_search, web_fetch) if fn.__name__ in cfg.web_tools]
    for fn in tools:
        server.add_tool(fn, name=fn.__name__, description=fn.__doc__)
    return server


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve over stdio or streamable HTTP."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--corpus", type=Path, default=None, help="JSONL file or folder to index")
    p.add_argument("--files-root", type=Path, default=None, help="folder read_file may read")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--timeout-s", type=float, default=10.0, help="run_python wall-clock limit")
    p.add_argument(
        "--python-path",
        action="append",
        default=[],
        help="folder mounted read-only on the sandbox's sys.path (repeatable; default: the "
        "site-packages holding numpy and pandas)",
    )
    p.add_argument(
        "--web-search",
        metavar="URL",
        default=None,
        help="enable web_search against this SearxNG-compatible service (or a URL template "
        "holding {query}); web tools are off by default",
    )
    p.add_argument("--web-fetch", action="store_true", help="enable web_fetch (off by default)")
    p.add_argument(
        "--web-allow-private",
        action="store_true",
        help="let web_fetch reach private/loopback addresses (refused by default)",
    )
    p.add_argument(
        "--enable-web",
        action="store_true",
        help="list both web tools even when unconfigured (they answer ToolDisabled)",
    )
    p.add_argument(
        "--transcribe-url",
        metavar="URL",
        default=None,
        help="OpenAI-compatible API base URL (POST {URL}/audio/transcriptions) read_file sends "
        "audio attachments to; key from OPENAI_API_KEY; audio is refused without it",
    )
    p.add_argument(
        "--transcribe-model", metavar="M", default="whisper-1", help="transcription model name"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    cfg = ToolServerConfig(
        corpus=args.corpus,
        files_root=args.files_root,
        sandbox=sandbox.SandboxConfig(
            timeout_s=args.timeout_s,
            cpu_s=max(1, int(args.timeout_s)),
            python_paths=tuple(args.python_path) or sandbox.default_python_paths(),
        ),
        web=web.WebConfig(
            search_url=args.web_search,
            fetch=args.web_fetch,
            allow_private=args.web_allow_private,
        ),
        transcribe=TranscribeConfig(url=args.transcribe_url, model=args.transcribe_model),
        enable_web=args.enable_web,
    )
    server = build_server(cfg)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
