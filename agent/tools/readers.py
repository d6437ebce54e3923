"""Document readers: file -> plain text for the attachment types a research task brings.

Covered offline: PDF, DOCX, XLSX, PPTX, CSV/TSV, JSON/JSON-LD/JSONL, XML, HTML, plain text and
source code, images (OCR) and ZIP archives (a listing, or one member read with the same readers
after extracting it, size-capped and zip-slip-safe, to a throwaway folder). Audio is read only
when `read_file` is given a transcriber (`transcribe_audio` bound to a `TranscribeConfig`: an
OpenAI-compatible `POST {url}/audio/transcriptions`); otherwise audio, video (extract its audio
track first) and any other binary type raise a clear `DocumentReadError`.

Each heavy reader library is imported inside its function so importing this module is cheap.
OCR needs the `tesseract` binary (Debian `tesseract-ocr`); without it a clear error is raised.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from agent.errors import DocumentReadError

if TYPE_CHECKING:
    from agent.tools.config import TranscribeConfig

__all__ = [
    "AUDIO_VIDEO_SUFFIXES",
    "MAX_ZIP_MEMBER_BYTES",
    "SUPPORTED_SUFFIXES",
    "Transcriber",
    "file_kind",
    "ocr_available",
    "read_file",
    "resolve_inside",
    "transcribe_audio",
]

_MAX_CHARS = 200_000
MAX_ZIP_MEMBER_BYTES = 64 * 1024 * 1024
"""Largest ZIP member (uncompressed) that `read_file(..., member=...)` extracts."""
_MAX_ZIP_LISTING = 500
"""Members shown in a ZIP listing."""


def ocr_available() -> bool:
    """Whether the tesseract OCR binary is on PATH."""
    return shutil.which("tesseract") is not None


def resolve_inside(root: Path, relative: str) -> Path:
    """`root / relative`, refusing paths that escape `root` (.., absolute paths, symlinks)."""
    base = root.resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise DocumentReadError(f"path {relative!r} is outside the allowed folder")
    if not target.is_file():
        raise DocumentReadError(f"file not found: {relative!r}")
    return target


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)


def _read_docx(path: Path) -> str:
    import docx

    d = docx.Document(str(path))
    parts = [p.text for p in d.paragraphs]
    for table in d.tables:
        for row in table.rows:
            parts.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def _read_xlsx(path: Path) -> str:
    import openpyxl

    wb = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    parts: list[str] = []
    for ws in wb.worksheets:
        parts.append(f"# sheet: {ws.title}")
        for row in ws.iter_rows(values_only=True):
            parts.append("\t".join("" if v is None else str(v) for v in row))
    wb.close()
    return "\n".join(parts)


def _read_pptx(path: Path) -> str:
    from pptx import Presentation

    prs = Presentation(str(path))
    parts: list[str] = []
    for i, slide in enumerate(prs.slides, 1):
        parts.append(f"# slide {i}")
        for shape in slide.shapes:
            if shape.has_text_frame:
                parts.append(shape.text_frame.text)
    return "\n".join(parts)


def _read_csv(path: Path) -> str:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        return "\n".join("\t".join(row) for row in csv.reader(f, delimiter=delimiter))


def _read_json(path: Path) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(x) for x in raw.splitlines() if x.strip()]
            return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
        return json.dumps(json.loads(raw), indent=1, ensure_ascii=False)
    except json.JSONDecodeError as exc:
        raise DocumentReadError(f"invalid JSON in {path.name}: {exc}") from exc


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _read_image(path: Path) -> str:
    if not ocr_available():
        raise DocumentReadError(
            "OCR unavailable: the 'tesseract' binary is not installed "
            "(Debian: apt-get install tesseract-ocr; scripts/setup.sh does this as root)"
        )
    import pytesseract
    from PIL import Image

    with Image.open(path) as img:
        return str(pytesseract.image_to_string(img)).strip()


def _safe_member_name(name: str) -> PurePosixPath:
    """`name` as a relative path without `..`; raises for zip-slip style names."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or ":" in pure.parts[0]:
        raise DocumentReadError(f"unsafe archive member name {name!r}")
    return pure


def _zip_listing(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    lines = [f"# zip archive {path.name}: {len(infos)} files"]
    lines += [f"{i.filename}\t{i.file_size} bytes" for i in infos[:_MAX_ZIP_LISTING]]
    if len(infos) > _MAX_ZIP_LISTING:
        lines.append(f"[... {len(infos) - _MAX_ZIP_LISTING} more files]")
    lines.append("Read one file with read_file(path=..., member=<name above>).")
    return "\n".join(lines)


def _read_zip_member(path: Path, member: str, max_chars: int) -> str:
    """Extract `member` of the archive `path` to a temp folder and read it like a file."""
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise DocumentReadError(
                f"no member {member!r} in {path.name}; call read_file without member to list them"
            ) from None
        if info.is_dir():
            raise DocumentReadError(f"{member!r} is a folder in {path.name}, not a file")
        safe = _safe_member_name(member)
        if info.file_size > MAX_ZIP_MEMBER_BYTES:
            raise DocumentReadError(
                f"member {member!r} is too large ({info.file_size} bytes uncompressed; "
                f"limit {MAX_ZIP_MEMBER_BYTES})"
            )
        with tempfile.TemporaryDirectory(prefix="memento-zip-") as tmp:
            target = Path(tmp) / safe.name
            written = 0
            with zf.open(info) as src, target.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > MAX_ZIP_MEMBER_BYTES:  # the header may lie about the size
                        raise DocumentReadError(f"member {member!r} is too large")
                    dst.write(chunk)
            if target.suffix.lower() == ".zip":
                return _zip_listing(target)
            return read_file(target, max_chars=max_chars)


_TEXT_SUFFIXES = frozenset(
    {".txt", ".md", ".markdown", ".rst", ".log", ".py", ".pyw", ".ipynb", ".js", ".mjs", ".ts"}
    | {".jsx", ".tsx", ".java", ".kt", ".scala", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".cs"}
    | {".go", ".rs", ".rb", ".php", ".pl", ".lua", ".r", ".jl", ".m", ".swift", ".sql", ".sh"}
    | {".bash", ".zsh", ".ps1", ".bat", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".env"}
    | {".properties", ".html", ".htm", ".css", ".scss", ".tex", ".bib", ".srt", ".vtt", ".xml"}
    | {".xsd", ".svg", ".rdf", ".gpx", ".kml", ".pdb", ".fasta", ".fa", ".gff", ".vcf", ".dot"}
    | {".graphql", ".proto"}
)
_AUDIO_SUFFIXES = frozenset(
    {".mp3", ".wav", ".m4a", ".flac", ".ogg", ".oga", ".opus", ".aac", ".wma", ".aiff", ".aif"}
    | {".mid", ".midi"}
)
_VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".webm", ".wmv", ".flv", ".m4v", ".mpeg", ".mpg", ".3gp"}
)
AUDIO_VIDEO_SUFFIXES = _AUDIO_SUFFIXES | _VIDEO_SUFFIXES
"""Suffixes refused with a 'needs a transcription endpoint' message when no transcriber is given."""
_TRANSCRIBABLE_SUFFIXES = _AUDIO_SUFFIXES - {".mid", ".midi"}  # MIDI holds notes, not sound
Transcriber = Callable[[Path], str]
"""Audio file -> transcript; raises `DocumentReadError` (see `transcribe_audio`)."""
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
_READERS: dict[str, Callable[[Path], str]] = {
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".xlsx": _read_xlsx,
    ".xlsm": _read_xlsx,
    ".pptx": _read_pptx,
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".json": _read_json,
    ".jsonld": _read_json,
    ".jsonl": _read_json,
    ".zip": _zip_listing,
    **dict.fromkeys(_TEXT_SUFFIXES, _read_text),
    **dict.fromkeys(_IMAGE_SUFFIXES, _read_image),
}
SUPPORTED_SUFFIXES = frozenset(_READERS)
_KINDS = {
    ".pdf": "pdf document",
    ".docx": "word document",
    ".xlsx": "spreadsheet",
    ".xlsm": "spreadsheet",
    ".xls": "spreadsheet (legacy .xls)",
    ".pptx": "slides",
    ".csv": "csv table",
    ".tsv": "tsv table",
    ".json": "json",
    ".jsonld": "json-ld",
    ".jsonl": "json lines",
    ".zip": "zip archive",
    ".xml": "xml",
    ".html": "html",
    ".htm": "html",
}
_PROSE = {".txt", ".md", ".markdown", ".rst", ".log"}


def file_kind(path: Path) -> str:
    """A short human label of `path`'s type from its suffix ('spreadsheet', 'audio', 'code'...)."""
    suffix = path.suffix.lower()
    if suffix in _KINDS:
        return _KINDS[suffix]
    if suffix in _AUDIO_SUFFIXES:
        return "audio"
    if suffix in _VIDEO_SUFFIXES:
        return "video"
    if suffix in _IMAGE_SUFFIXES:
        return "image"
    if suffix in _PROSE:
        return "text"
    if suffix in _TEXT_SUFFIXES:
        return "code/structured text"
    return "unknown"


def _unsupported(path: Path, transcribing: bool = False) -> DocumentReadError:
    suffix = path.suffix.lower()
    if suffix in _VIDEO_SUFFIXES:
        extract = f"extract the audio track first, e.g. ffmpeg -i {path.name} -vn {path.stem}.mp3"
        if transcribing:
            return DocumentReadError(
                f"video file {path.name!r} is not supported (only audio is transcribed; {extract})"
            )
        return DocumentReadError(
            f"video file {path.name!r} is not supported offline "
            f"(audio/video needs a transcription endpoint; {extract})"
        )
    if suffix in AUDIO_VIDEO_SUFFIXES:
        return DocumentReadError(
            f"{file_kind(path)} file {path.name!r} is not supported offline "
            "(audio/video needs a transcription endpoint)"
        )
    return DocumentReadError(
        f"unsupported file type {path.suffix!r} ({path.name!r} is binary or of an unknown type); "
        f"supported: {sorted(SUPPORTED_SUFFIXES)}"
    )


def transcribe_audio(path: Path, cfg: TranscribeConfig) -> str:
    """Transcript of the audio file `path` from the endpoint of `cfg`; raises `DocumentReadError`.

    Sends `POST {cfg.url}/audio/transcriptions` (multipart `file` and `model`, the OpenAI API)
    and returns the `text` of the JSON answer. Files over `cfg.max_bytes` are refused unsent.
    """
    import httpx  # imported here so importing this module stays cheap

    if cfg.url is None:
        raise DocumentReadError(f"cannot transcribe {path.name!r}: no transcription endpoint set")
    endpoint = cfg.url.rstrip("/") + "/audio/transcriptions"
    size = path.stat().st_size
    if size > cfg.max_bytes:
        raise DocumentReadError(
            f"audio file {path.name!r} is {size} bytes, over the {cfg.max_bytes}-byte upload "
            "limit of the transcription endpoint (cut or re-encode it first)"
        )
    api_key = cfg.api_key or os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with path.open("rb") as fh:
            response = httpx.post(
                endpoint,
                files={"file": (path.name, fh, "application/octet-stream")},
                data={"model": cfg.model},
                headers=headers,
                timeout=cfg.timeout_s,
            )
    except httpx.HTTPError as exc:
        raise DocumentReadError(
            f"transcription of {path.name!r} failed: {endpoint} unreachable "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if response.status_code != 200:
        raise DocumentReadError(
            f"transcription of {path.name!r} failed: {endpoint} answered HTTP "
            f"{response.status_code}: {response.text[:300]}"
        )
    try:
        text = response.json()["text"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DocumentReadError(
            f"transcription of {path.name!r} failed: {endpoint} did not answer JSON with a "
            f"'text' field: {response.text[:300]!r}"
        ) from exc
    if not isinstance(text, str):
        raise DocumentReadError(f"transcription of {path.name!r} failed: 'text' is not a string")
    return text


def read_file(
    path: Path,
    max_chars: int = _MAX_CHARS,
    member: str | None = None,
    transcriber: Transcriber | None = None,
) -> str:
    """Plain text of `path`, truncated to `max_chars`; raises `DocumentReadError`.

    For a `.zip`, returns the member listing, or with `member` the text of that member (read
    with the reader of its own type). Audio is read through `transcriber` when one is given
    (e.g. `functools.partial(transcribe_audio, cfg=TranscribeConfig(url=...))`).
    """
    if not path.is_file():
        raise DocumentReadError(f"file not found: {path}")
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None and transcriber is not None and suffix in _TRANSCRIBABLE_SUFFIXES:
        reader = transcriber
    if reader is None:
        raise _unsupported(path, transcribing=transcriber is not None)
    if member is not None and path.suffix.lower() != ".zip":
        raise DocumentReadError(f"member= only applies to .zip archives, not {path.name!r}")
    try:
        text = reader(path) if member is None else _read_zip_member(path, member, max_chars)
    except DocumentReadError:
        raise
    except Exception as exc:  # boundary: third-party parsers raise many exception types
        raise DocumentReadError(f"could not read {path.name}: {type(exc).__name__}: {exc}") from exc
    if len(text) > max_chars:
        buf = io.StringIO()
        buf.write(text[:max_chars])
        buf.write(f"\n[... truncated {len(text) - max_chars} characters]")
        text = buf.getvalue()
    return text
