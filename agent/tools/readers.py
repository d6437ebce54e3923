"""Document readers: file -> plain text for PDF, DOCX, XLSX, PPTX, CSV/JSON/text and images (OCR).

Each heavy reader library is imported inside its function so importing this module is cheap.
OCR needs the `tesseract` binary (Debian `tesseract-ocr`); without it a clear error is raised.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

from agent.errors import DocumentReadError

__all__ = ["SUPPORTED_SUFFIXES", "ocr_available", "read_file", "resolve_inside"]

_MAX_CHARS = 200_000


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
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        return "\n".join("\t".join(row) for row in csv.reader(f))


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


_READERS: dict[str, Callable[[Path], str]] = {
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".xlsx": _read_xlsx,
    ".pptx": _read_pptx,
    ".csv": _read_csv,
    ".json": _read_json,
    ".jsonl": _read_json,
    ".txt": _read_text,
    ".md": _read_text,
    ".png": _read_image,
    ".jpg": _read_image,
    ".jpeg": _read_image,
    ".tif": _read_image,
    ".tiff": _read_image,
    ".bmp": _read_image,
}
SUPPORTED_SUFFIXES = frozenset(_READERS)


def read_file(path: Path, max_chars: int = _MAX_CHARS) -> str:
    """Plain text of `path`, truncated to `max_chars`; raises `DocumentReadError`."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DocumentReadError(
            f"unsupported file type {path.suffix!r}; supported: {sorted(SUPPORTED_SUFFIXES)}"
        )
    if not path.is_file():
        raise DocumentReadError(f"file not found: {path}")
    try:
        text = reader(path)
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
