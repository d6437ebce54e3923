"""Named exceptions of the research-agent mode (one module, one place to map them)."""

from __future__ import annotations

__all__ = [
    "AgentError",
    "BenchDataError",
    "DocumentNotFound",
    "DocumentReadError",
    "JudgeParseError",
    "MathEvalError",
    "MemoryMismatchError",
    "PlanParseError",
    "RunMismatchError",
    "SandboxUnavailable",
    "ToolCallError",
    "ToolCallTimeout",
    "ToolDisabled",
    "ToolFailure",
    "WebFetchError",
    "WebSearchError",
]


class AgentError(Exception):
    """Base class of every research-agent error."""


class ToolFailure(AgentError):
    """A tool could not do what it was asked; the message is shown to the calling LLM."""


class ToolDisabled(ToolFailure):
    """The tool exists but is switched off by configuration (e.g. web search offline)."""


class DocumentNotFound(ToolFailure):
    """No document with that id in the search collection."""


class DocumentReadError(ToolFailure):
    """A file could not be read (unsupported type, outside the allowed folder, missing OCR)."""


class MathEvalError(ToolFailure):
    """An expression is malformed, unsafe or too expensive to evaluate."""


class SandboxUnavailable(ToolFailure):
    """No sandbox backend (bubblewrap, unshare) works on this machine."""


class ToolCallError(AgentError):
    """The client could not reach a tool server or the server rejected the call."""


class ToolCallTimeout(ToolCallError):
    """A tool call did not finish within its time limit."""


class PlanParseError(AgentError):
    """Model text could not be turned into a valid plan."""


class BenchDataError(AgentError):
    """A benchmark file is missing or malformed."""


class RunMismatchError(AgentError):
    """A resumed benchmark folder was written with another configuration or other models."""


class JudgeParseError(AgentError):
    """An LLM judge's reply carried no readable grade."""


class MemoryMismatchError(AgentError):
    """A saved agent memory cannot serve this run (missing, or built with another encoder)."""


class WebSearchError(ToolFailure):
    """The search service could not be reached or answered something unreadable."""


class WebFetchError(ToolFailure):
    """A page could not be fetched: bad or refused address, HTTP error, unreadable content."""
