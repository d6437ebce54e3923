"""Configuration of the tool server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.tools.sandbox import SandboxConfig

__all__ = ["ToolServerConfig"]


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
    enable_web: bool = False
    """Register the web tools (stubs that raise `ToolDisabled` in this build)."""
