"""Find and read the Tianchi Rec-Tmall files (official and sample layouts).

Official full format: `\\u0001`-delimited text without a header; the log is split in parts
(parta/partb/...), possibly zipped. Sample format: comma CSV with a header; the product file
is GB18030; the review "csv" is really an .xlsx workbook. Both are detected from the bytes,
not trusted from file extensions.
"""

from __future__ import annotations

import codecs
import csv
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from data.errors import InputLayoutError

SEP_OFFICIAL = "\x01"
LOG_KEYS = ("2014002", "rec_tmall_log")
PRODUCT_KEYS = ("2014001", "rec_tmall_product")
REVIEW_KEYS = ("2014003", "rec_tmall_review")
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M")
"""Accepted timestamp layouts (`2014/9/18 15:03` in the sample, ISO-like in the full data)."""
_ID_RE = re.compile(r"\s*[A-Za-z]*(\d+)\s*")


@dataclass(frozen=True)
class TextLayout:
    """How a delimited text file is laid out."""

    separator: str
    """`\\x01` (official) or `,` (sample)."""
    has_header: bool
    """True for the sample's header row."""
    encoding: str
    """`utf-8` or `gb18030`, sniffed from the first megabyte."""


@dataclass(frozen=True)
class TianchiFiles:
    """The files of one Tianchi input folder, classified by name."""

    logs: list[Path]
    """Log parts in name order (parta, partb, ...), already unzipped."""
    product: Path | None
    """Product file, if present."""
    review: Path | None
    """Review file (text or .xlsx), if present."""


def _kind(name: str) -> str | None:
    low = name.lower()
    for kind, keys in (("log", LOG_KEYS), ("product", PRODUCT_KEYS), ("review", REVIEW_KEYS)):
        if any(k in low for k in keys):
            return kind
    return None


def is_xlsx(path: Path) -> bool:
    """True if `path` is an Excel workbook whatever its extension."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return "[Content_Types].xml" in zf.namelist()


def discover_files(input_dir: Path, unzip_dir: Path) -> TianchiFiles:
    """Classify the files of `input_dir`; zip archives are extracted (streamed) to `unzip_dir`."""
    if not input_dir.is_dir():
        raise InputLayoutError(f"input folder not found: {input_dir}")
    found: dict[str, list[Path]] = {"log": [], "product": [], "review": []}
    for path in sorted(p for p in input_dir.iterdir() if p.is_file()):
        if zipfile.is_zipfile(path) and not is_xlsx(path):
            with zipfile.ZipFile(path) as zf:
                for member in sorted(zf.namelist()):
                    kind = _kind(member) or _kind(path.name)
                    if member.endswith("/") or kind is None:
                        continue
                    target = unzip_dir / Path(member).name
                    unzip_dir.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    found[kind].append(target)
            continue
        kind = _kind(path.name)
        if kind is not None:
            found[kind].append(path)
    if not found["log"]:
        raise InputLayoutError(f"no log file (name containing one of {LOG_KEYS}) in {input_dir}")
    for kind in ("product", "review"):
        if len(found[kind]) > 1:
            raise InputLayoutError(f"more than one {kind} file in {input_dir}: {found[kind]}")
    return TianchiFiles(
        logs=sorted(found["log"], key=lambda p: p.name),
        product=found["product"][0] if found["product"] else None,
        review=found["review"][0] if found["review"] else None,
    )


def sniff_layout(path: Path) -> TextLayout:
    """Separator, header and encoding of a delimited text file, from its first megabyte."""
    with path.open("rb") as f:
        head = f.read(1 << 20)
    official = SEP_OFFICIAL.encode() in head
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        encoding = "utf-8"
    except UnicodeDecodeError:
        encoding = "gb18030"
    return TextLayout(
        separator=SEP_OFFICIAL if official else ",",
        has_header=not official,
        encoding=encoding,
    )


def iter_text_rows(path: Path, layout: TextLayout) -> Iterator[tuple[int, list[str] | None, str]]:
    """Yield (data row index, fields or None if undecodable, raw text) line by line."""
    with path.open("rb") as f:
        if layout.has_header:
            f.readline()
        for i, line in enumerate(f):
            raw = line.rstrip(b"\r\n")
            try:
                text = raw.decode(layout.encoding)
            except UnicodeDecodeError:
                yield i, None, raw.decode(layout.encoding, errors="replace")
                continue
            if layout.separator == SEP_OFFICIAL:
                fields = text.split(SEP_OFFICIAL)
            else:
                fields = next(csv.reader([text]), [])
            yield i, fields, text


def iter_xlsx_rows(path: Path) -> Iterator[tuple[int, list[object], str]]:
    """Yield (data row index, cell values, raw text) from the first sheet, header skipped."""
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        next(rows, None)
        for i, row in enumerate(rows):
            values = list(row)
            yield i, values, ",".join("" if v is None else str(v) for v in values)
    finally:
        wb.close()


def parse_id(value: object) -> int | None:
    """`i161` / `u2625` / `161` / 161 -> the integer; anything else -> None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        return None
    m = _ID_RE.fullmatch(value)
    return int(m.group(1)) if m else None


def parse_time(value: object) -> datetime | None:
    """A datetime cell or one of TIME_FORMATS -> datetime; anything else -> None."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def opt_text(value: object) -> str | None:
    """Cell -> stripped string; empty and the literal `null` -> None."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "null", "NULL") else text
