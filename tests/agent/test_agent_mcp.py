"""Tests of the MCP tool server and `ToolClient` (in-process, stdio subprocess, streamable HTTP)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import ToolCallError, ToolCallTimeout
from agent.tools.client import ToolClient
from agent.tools.config import ToolServerConfig
from agent.tools.sandbox import SandboxConfig, detect_backend
from agent.tools.search import Document, write_corpus_jsonl

DOCS = [
    Document("ed-wood", "Ed Wood", "Edward Davis Wood Jr. was an American filmmaker."),
    Document("paris", "Paris", "Paris is the capital and most populous city of France."),
    Document("nile", "Nile", "The Nile is a major north-flowing river in northeastern Africa."),
]
TOOLS = {"search", "read_document", "read_file", "math", "run_python"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    write_corpus_jsonl(DOCS, path)
    return path


@pytest.fixture(scope="module")
def inproc(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolClient]:
    files = tmp_path_factory.mktemp("files")
    (files / "note.csv").write_text("city,country\nParis,France\n")
    cfg = ToolServerConfig(corpus=corpus, files_root=files, sandbox=SandboxConfig(timeout_s=5))
    with ToolClient.in_process(cfg) as client:
        yield client


def test_in_process_lists_tools_with_schemas(inproc: ToolClient) -> None:
    """The server lists the five tools; OpenAI specs carry the JSON schema of the arguments."""
    specs = {t.name: t for t in inproc.list_tools()}
    assert set(specs) == TOOLS
    assert specs["search"].input_schema["required"] == ["query"]
    oa = {t["function"]["name"]: t for t in inproc.openai_tools()}
    assert oa["math"]["type"] == "function"
    assert "expression" in oa["math"]["function"]["parameters"]["properties"]


def test_in_process_search_read_and_math(inproc: ToolClient) -> None:
    """search finds the right document, read_document returns it, math evaluates."""
    res = inproc.call_tool("search", {"query": "river in Africa", "k": 2})
    assert not res.is_error
    assert res.data is not None and res.data["hits"][0]["doc_id"] == "nile"
    assert "nile" in res.text
    doc = inproc.call_tool("read_document", {"doc_id": "paris"})
    assert doc.data is not None and doc.data["text"] == DOCS[1].text
    assert doc.data["next_offset"] is None
    m = inproc.call_tool("math", {"expression": "(3 + 4) * 6"})
    assert m.data is not None and m.data["value"] == "42"


def test_tool_errors_come_back_as_messages(inproc: ToolClient) -> None:
    """Domain errors reach the caller as is_error results with the reason, not as crashes."""
    r = inproc.call_tool("read_document", {"doc_id": "atlantis"})
    assert r.is_error and "DocumentNotFound" in r.text and "atlantis" in r.text
    r = inproc.call_tool("math", {"expression": "__import__('os')"})
    assert r.is_error and "MathEvalError" in r.text
    r = inproc.call_tool("no_such_tool", {})
    assert r.is_error and "no_such_tool" in r.text
    r = inproc.call_tool("read_file", {"path": "../../etc/passwd"})
    assert r.is_error and "outside the allowed folder" in r.text


def test_read_file_reads_attachments(inproc: ToolClient) -> None:
    """read_file returns the text of a file inside the attachments folder."""
    r = inproc.call_tool("read_file", {"path": "note.csv"})
    assert r.data is not None and r.data["text"] == "city\tcountry\nParis\tFrance"


@pytest.mark.skipif(detect_backend() is None, reason="no sandbox backend here")
def test_run_python_tool_is_sandboxed(inproc: ToolClient) -> None:
    """run_python returns stdout and reports the time limit of an endless loop."""
    ok = inproc.call_tool("run_python", {"code": "print(sum(range(10)))"})
    assert ok.data is not None and ok.data["stdout"] == "45\n"
    slow = inproc.call_tool("run_python", {"code": "while True: pass"}, timeout_s=20)
    assert slow.data is not None and slow.data["timed_out"] is True


def test_web_tools_off_by_default_and_stub_when_enabled(corpus: Path) -> None:
    """Web tools are absent by default; enabled, they answer with a clear ToolDisabled error."""
    with ToolClient.in_process(ToolServerConfig(corpus=corpus, enable_web=True)) as client:
        assert {"web_search", "web_fetch"} <= {t.name for t in client.list_tools()}
        r = client.call_tool("web_search", {"query": "x"})
        assert r.is_error and "ToolDisabled" in r.text


@pytest.mark.skipif(detect_backend() is None, reason="no sandbox backend here")
def test_call_timeout_raises_and_client_stays_usable(corpus: Path) -> None:
    """A call slower than its timeout raises ToolCallTimeout; the next call still works."""
    cfg = ToolServerConfig(corpus=corpus, sandbox=SandboxConfig(timeout_s=3))
    with ToolClient.in_process(cfg) as client:
        with pytest.raises(ToolCallTimeout, match="run_python"):
            client.call_tool("run_python", {"code": "import time; time.sleep(2.5)"}, timeout_s=0.5)
        assert client.call_tool("math", {"expression": "1+1"}).data == {
            "expression": "1+1",
            "value": "2",
        }


def test_unconnected_client_raises() -> None:
    """Calling a tool before connecting raises ToolCallError."""
    client = ToolClient.in_process(ToolServerConfig())
    with pytest.raises(ToolCallError, match="not connected"):
        client.call_tool("math", {"expression": "1"})


def test_stdio_subprocess_search_returns_right_document(corpus: Path) -> None:
    """Over stdio the server subprocess lists the tools and search returns the right document."""
    with ToolClient.stdio(corpus=corpus, timeout_s=60) as client:
        assert {t.name for t in client.list_tools()} == TOOLS
        res = client.call_tool("search", {"query": "American filmmaker Wood", "k": 3})
        assert res.data is not None and res.data["hits"][0]["doc_id"] == "ed-wood"
        doc = client.call_tool("read_document", {"doc_id": "ed-wood"})
        assert doc.data is not None and doc.data["title"] == "Ed Wood"


def test_stdio_bad_command_raises_tool_call_error(tmp_path: Path) -> None:
    """A server process that cannot start gives ToolCallError, not a hang."""
    client = ToolClient.stdio(corpus=tmp_path / "missing.jsonl", timeout_s=30)
    with pytest.raises(ToolCallError):
        client.start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_streamable_http_transport(corpus: Path) -> None:
    """The server runs over streamable HTTP and answers a search through the HTTP client."""
    port = _free_port()
    cmd = [sys.executable, "-m", "agent.tools.server", "--corpus", str(corpus)]
    cmd += ["--transport", "http", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with ToolClient.http(f"http://127.0.0.1:{port}/mcp", timeout_s=30) as client:
            res = client.call_tool("search", {"query": "capital of France"})
            assert res.data is not None and res.data["hits"][0]["doc_id"] == "paris"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
