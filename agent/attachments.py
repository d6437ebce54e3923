"""Task attachments as prompt text: name, type, size and a readable extract of each file.

The planner and executor show `describe_attachments(...)` to the model so it knows what files
the task brings and how to open them (`read_file(path=NAME)`, or `/attachments/NAME` inside
`run_python`). Reading goes through `agent.tools.readers.read_file`, so a file it cannot read
(video, unknown binary, audio without a transcriber) is listed with the reason instead of an
extract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import DocumentReadError
from agent.tools.readers import Transcriber, file_kind, read_file
from agent.tools.sandbox import ATTACHMENTS_MOUNT

__all__ = ["AttachmentInfo", "describe_attachments", "inspect_attachment"]

DEFAULT_EXTRACT_CHARS = 1500
"""Characters of each attachment's text shown in the prompt."""


@dataclass(frozen=True)
class AttachmentInfo:
    """What the model is told about one attached file."""

    name: str
    """Path relative to the attachments folder: the `path` argument of `read_file`."""
    kind: str
    """Human label of the type with its suffix, e.g. 'spreadsheet (.xlsx)'."""
    size_bytes: int
    """File size on disk; -1 when the file is missing."""
    extract: str
    """The first characters of the file's text ('' when it could not be read)."""
    error: str | None
    """Why the file could not be read (e.g. audio offline), None when it was."""


def _human_size(n: int) -> str:
    if n < 0:
        return "missing"
    if n < 1024:
        return f"{n} bytes"
    kb = n / 1024
    return f"{kb:.1f} KB" if kb < 1024 else f"{kb / 1024:.1f} MB"


def inspect_attachment(
    path: Path,
    chars: int = DEFAULT_EXTRACT_CHARS,
    root: Path | None = None,
    transcriber: Transcriber | None = None,
) -> AttachmentInfo:
    """Name (relative to `root`, else the file name), kind, size and text extract of `path`.

    Audio gets an extract only with a `transcriber` (see `agent.tools.readers.read_file`)."""
    name = path.name
    if root is not None:
        try:
            name = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            name = path.name
    suffix = path.suffix.lower() or "no suffix"
    kind = f"{file_kind(path)} ({suffix})"
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    try:
        return AttachmentInfo(
            name, kind, size, read_file(path, max_chars=chars, transcriber=transcriber), None
        )
    except DocumentReadError as exc:
        return AttachmentInfo(name, kind, size, "", str(exc))


def _render(info: AttachmentInfo, chars: int) -> str:
    lines = [f"### {info.name}", f"type: {info.kind}; size: {_human_size(info.size_bytes)}"]
    if info.error is not None:
        lines.append(f"cannot be read: {info.error}")
    elif not info.extract.strip():
        lines.append("extract: (no text found)")
    else:
        lines += [f"extract (first {chars} characters):", "<<<", info.extract, ">>>"]
    return "\n".join(lines)


def describe_attachments(
    paths: Sequence[Path],
    extract_chars: int = DEFAULT_EXTRACT_CHARS,
    root: Path | None = None,
    transcriber: Transcriber | None = None,
) -> str:
    """Prompt block describing each attachment; '' when there are none.

    `root` is the folder the tools see (the tool server's `files_root`); names are given
    relative to it, else as bare file names. `transcriber` (optional) gives audio files an
    extract; without one they are listed as not readable.
    """
    if not paths:
        return ""
    infos = [inspect_attachment(p, extract_chars, root, transcriber) for p in paths]
    example = infos[0].name
    head = (
        f"Attached files ({len(infos)}). Read one with the read_file tool, e.g. "
        f'read_file(path="{example}") (for a .zip, add member="<file in it>"); inside run_python '
        f"they are read-only at {ATTACHMENTS_MOUNT}/<name>, e.g. "
        f'open("{ATTACHMENTS_MOUNT}/{example}"), with numpy and pandas available.'
    )
    return "\n\n".join([head, *(_render(i, extract_chars) for i in infos)])
