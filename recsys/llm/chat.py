"""Chat-with-tools clients: an OpenAI-compatible endpoint or the local model, one protocol.

- `OpenAIChatClient`: any OpenAI-compatible chat-completions endpoint with tool calling
  (OpenAI, vLLM, llama.cpp server, the scripted test server); timeouts and retries with backoff.
- `LocalChatClient`: the local default model (via `recsys.llm`) for offline plumbing. Small local
  models have no native tool calling here, so tools are described in the system prompt and a
  call is written as JSON in the text: `{"tool": "search", "arguments": {"query": "..."}}`.

Messages are OpenAI-style dicts (`role`, `content`, assistant `tool_calls`, `tool` results).
Used by the research agent's planner and executor (`agent/`).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from recsys.llm.errors import LLMBackendError
from recsys.llm.json_text import iter_json_objects

__all__ = [
    "ChatClient",
    "ChatReply",
    "LocalChatClient",
    "LocalChatConfig",
    "Message",
    "OpenAIChatClient",
    "OpenAIChatConfig",
    "ToolCall",
    "parse_text_tool_call",
]

log = logging.getLogger(__name__)
Message = dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One tool call requested by the model."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ChatReply:
    """One assistant turn."""

    content: str
    """Text ('' when the model only called tools or said nothing)."""
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_message(self) -> Message:
        """The OpenAI assistant message to append to the conversation."""
        msg: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in self.tool_calls
            ]
        return msg


class ChatClient(Protocol):
    """A chat model that may call tools."""

    @property
    def model_id(self) -> str:
        """Name of the model (for logs)."""
        ...

    def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
    ) -> ChatReply:
        """One assistant turn for `messages`; `tools` in OpenAI `tools=` format."""
        ...


@dataclass(frozen=True)
class OpenAIChatConfig:
    """Settings of an OpenAI-compatible chat endpoint."""

    base_url: str
    """Server root with the version path, e.g. http://127.0.0.1:8000/v1."""
    model: str
    """Model name sent with each request."""
    api_key: str = "EMPTY"
    """API key (local servers usually ignore it)."""
    timeout_s: float = 60.0
    """Per-request timeout."""
    max_retries: int = 3
    """Retries of transient failures (timeouts, connection errors, 429, 5xx)."""
    backoff_s: float = 0.5
    """First retry delay; doubles after each failure."""
    temperature: float = 0.0
    """Sampling temperature."""
    max_tokens: int = 512
    """Default completion budget per call."""


def _parse_args(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        val = json.loads(raw)
    except json.JSONDecodeError:
        return {"_raw": raw}
    return val if isinstance(val, dict) else {"_value": val}


class OpenAIChatClient:
    """`ChatClient` over the `openai` package."""

    def __init__(self, cfg: OpenAIChatConfig, client: Any | None = None) -> None:
        import openai

        self.cfg = cfg
        self._openai = openai
        self.client = client or openai.OpenAI(
            base_url=cfg.base_url, api_key=cfg.api_key, timeout=cfg.timeout_s, max_retries=0
        )

    @property
    def model_id(self) -> str:
        return self.cfg.model

    def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
    ) -> ChatReply:
        oa = self._openai
        retryable = (
            oa.APITimeoutError,
            oa.APIConnectionError,
            oa.RateLimitError,
            oa.InternalServerError,
        )
        kwargs: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": list(messages),
            "temperature": self.cfg.temperature,
            "max_tokens": max_tokens or self.cfg.max_tokens,
        }
        if tools:
            kwargs["tools"] = list(tools)
        delay = self.cfg.backoff_s
        for attempt in range(self.cfg.max_retries + 1):
            try:
                resp = self.client.chat.completions.create(**kwargs)
                break
            except retryable as exc:
                if attempt == self.cfg.max_retries:
                    raise LLMBackendError(f"{self.cfg.base_url}: {exc!r} after retries") from exc
                log.warning("LLM call failed (%r), retry in %.1fs", exc, delay)
                time.sleep(delay)
                delay *= 2
            except oa.OpenAIError as exc:
                raise LLMBackendError(f"{self.cfg.base_url}: {exc!r}") from exc
        if not resp.choices:
            raise LLMBackendError(f"{self.cfg.base_url}: reply without choices")
        msg = resp.choices[0].message
        calls = tuple(
            ToolCall(tc.id, tc.function.name, _parse_args(tc.function.arguments))
            for tc in (msg.tool_calls or [])
            if getattr(tc, "function", None) is not None
        )
        usage = resp.usage
        return ChatReply(
            msg.content or "",
            calls,
            int(usage.prompt_tokens) if usage else 0,
            int(usage.completion_tokens) if usage else 0,
        )


_ids = itertools.count(1)


def parse_text_tool_call(text: str, tool_params: Mapping[str, Sequence[str]]) -> ToolCall | None:
    """The first `{"tool": NAME, "arguments": {...}}` object in `text` naming a known tool.

    `tool_params`: tool name -> its parameter names, first = main one. Arguments given as a
    bare string (or a list, as small models often write) go to the main parameter.
    """
    for obj in iter_json_objects(text):
        name = obj.get("tool") or obj.get("name")
        if not isinstance(name, str) or name not in tool_params:
            continue
        args = obj.get("arguments", obj.get("args", {}))
        params = list(tool_params[name])
        if isinstance(args, list):
            vals = [a for a in args if isinstance(a, str) and a not in params]
            args = vals[-1] if vals else ""
        if not isinstance(args, dict):
            args = {params[0]: str(args)} if params and str(args) else {}
        return ToolCall(f"local_{next(_ids)}", name, args)
    return None


@dataclass(frozen=True)
class LocalChatConfig:
    """Settings of the local-model backend."""

    model: str = "qwen2.5-0.5b"
    """Packaged model name, local folder or cached hub id (see `recsys.llm.provider`)."""
    max_new_tokens: int = 64
    """Completion budget per call (small: CPU generation is slow)."""
    max_prompt_tokens: int = 1536
    """Prompts are left-truncated to this many tokens."""
    threads: int = 0
    """torch CPU threads (0 = leave torch's default)."""
    dtype: str = "float32"
    """Weights dtype (float32: bf16 matmuls are slow on most CPUs)."""


def _params(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    params = tool["function"].get("parameters", {})
    return params if isinstance(params, Mapping) else {}


def _param_names(schema: Mapping[str, Any]) -> list[str]:
    """Parameter names, required ones first."""
    props = list(schema.get("properties", {}))
    req = [p for p in schema.get("required", []) if p in props]
    return req + [p for p in props if p not in req]


def _flatten(messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """OpenAI messages (tool calls / tool results) -> plain role/content turns."""
    out: list[dict[str, str]] = []
    if tools:
        lines = [
            f"- {t['function']['name']}: {t['function'].get('description', '')} "
            f"arguments: {json.dumps(dict.fromkeys(_param_names(_params(t)), '...'))}"
            for t in tools
        ]
        out.append(
            {
                "role": "system",
                "content": "Tools:\n" + "\n".join(lines) + "\nTo call a tool reply ONLY with "
                'JSON like {"tool": "search", "arguments": {"query": "..."}}.',
            }
        )
    for m in messages:
        role, content = m.get("role", "user"), str(m.get("content") or "")
        if role == "assistant" and m.get("tool_calls"):
            calls = [
                {
                    "tool": c["function"]["name"],
                    "arguments": _parse_args(c["function"]["arguments"]),
                }
                for c in m["tool_calls"]
            ]
            content = (content + "\n" + json.dumps(calls[0])).strip()
        if role == "tool":
            role, content = "user", f"Tool result:\n{content}"
        if role == "system" and out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": content + "\n\n" + out[0]["content"]}
            continue
        out.append({"role": role, "content": content})
    return out


class LocalChatClient:
    """`ChatClient` running the local model on CPU (greedy); tool calls parsed from JSON text."""

    def __init__(self, cfg: LocalChatConfig = LocalChatConfig()) -> None:
        self.cfg = cfg
        self._loaded: Any = None

    @property
    def model_id(self) -> str:
        return f"local:{self.cfg.model}"

    def _model(self) -> Any:
        if self._loaded is None:
            from recsys.llm.provider import load_model

            if self.cfg.threads > 0:
                import torch

                torch.set_num_threads(self.cfg.threads)

            self._loaded = load_model(self.cfg.model, dtype=self.cfg.dtype)
        return self._loaded

    def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
    ) -> ChatReply:
        from recsys.llm.generate import generate_chat

        gen = generate_chat(
            self._model(),
            _flatten(messages, tools),
            max_new_tokens=min(max_tokens or self.cfg.max_new_tokens, self.cfg.max_new_tokens),
            max_prompt_tokens=self.cfg.max_prompt_tokens,
        )
        params = {
            t["function"]["name"]: _param_names(t["function"].get("parameters", {}))
            for t in tools or []
        }
        call = parse_text_tool_call(gen.text, params) if params else None
        if call is not None:
            return ChatReply("", (call,), gen.prompt_tokens, gen.completion_tokens)
        return ChatReply(gen.text, (), gen.prompt_tokens, gen.completion_tokens)
