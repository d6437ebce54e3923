"""Configuration of the tool server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.tools.sandbox import SandboxConfig
from agent.tools.web import WebConfig

__all__ = ["ToolServerConfig", "TranscribeConfig"]


@dataclass(frozen=True)
class TranscribeConfig:
    """Speech-to-text endpoint for audio attachments; off (url None) by default."""

    url: str | None = None
    """Base URL of an OpenAI-compatible API (`POST {url}/audio/transcriptions` is called), e.g.
    `https://api.openai.com/v1` or a local whisper server; None leaves audio unreadable."""
    model: str = "whisper-1"
    """`model` field of the multipart request."""
    api_key: str | None = field(default=None, repr=False)
    """Bearer token; None reads `OPENAI_API_KEY` from the environment at call time (no header
    when that is unset either)."""
    timeout_s: float = 120.0
    """Connect/read timeout of the upload and transcription request."""
    max_bytes: int = 25 * 1024 * 1024
    """Files larger than this are refused before upload (25 MB is the OpenAI limit)."""


@dataclass(frozen=True)
class ToolServerConfig:
    """What the MCP tool server exposes and with which limits."""

    corpus: Path | None = None
    """JSONL file or folder indexed by `search`/`read_document`; None = empty collection."""
    files_root: Path | None = None
    """Folder `read_file` may read (task attachments); None disables `read_file`."""
    search_k_max: int = 20
    """Upper bound on `k` in `search`."""
    snippet_chars: int = 300
    """Snippet width returned by `search`."""
    read_max_chars: int = 20_000
    """`read_document` / `read_file` return at most this many characters."""
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    """Limits of `run_python`."""
    web: WebConfig = field(default_factory=WebConfig)
    """Web search service and page fetch (both off by default; see `agent.tools.web`)."""
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)
    """Transcription endpoint `read_file` sends audio files to (off by default)."""
    enable_web: bool = False
    """Register both web tools even when unconfigured (they then answer `ToolDisabled` saying
    how to enable them). A configured `web.search_url` / `web.fetch` registers its tool anyway."""

    @property
    def web_tools(self) -> tuple[str, ...]:
        """Names of the web tools the server registers (empty by default)."""
        names = []
        if self.enable_web or self.web.search_url is not None:
            names.append("web_search")
        if self.enable_web or self.web.fetch:
            names.append("web_fetch")
        return tuple(names)
