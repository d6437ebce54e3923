"""Chat clients: OpenAI-compatible errors after retries, local-model message flattening."""

from __future__ import annotations

import socket

import pytest

from recsys.llm.chat import (
    ChatReply,
    OpenAIChatClient,
    OpenAIChatConfig,
    ToolCall,
    _flatten,
)
from recsys.llm.errors import LLMBackendError

SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "BM25 search",
        "parameters": {"properties": {"k": {}, "query": {}}, "required": ["query"]},
    },
}


def test_unreachable_endpoint_raises_after_retries() -> None:
    """A closed port is retried max_retries times, then surfaces as LLMBackendError."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = OpenAIChatConfig(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.01)
    with pytest.raises(LLMBackendError, match="after retries"):
        OpenAIChatClient(cfg).chat([{"role": "user", "content": "hi"}])


def test_flatten_turns_tool_traffic_into_plain_turns() -> None:
    """Tools are described in the system turn; tool calls/results become plain text turns."""
    call = ChatReply("", (ToolCall("c1", "search", {"query": "Nile"}),)).as_message()
    msgs = [
        {"role": "system", "content": "You are the executor"},
        {"role": "user", "content": "Task: x"},
        call,
        {"role": "tool", "tool_call_id": "c1", "content": '{"hits": []}'},
    ]
    flat = _flatten(msgs, [SEARCH])
    assert [m["role"] for m in flat] == ["system", "user", "assistant", "user"]
    assert flat[0]["content"].startswith("You are the executor")
    assert '"query": "..."' in flat[0]["content"] and "search" in flat[0]["content"]
    assert '"tool": "search"' in flat[2]["content"] and "Nile" in flat[2]["content"]
    assert flat[3]["content"].startswith("Tool result:")
