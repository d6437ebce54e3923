"""Tests of the document readers (PDF, DOCX, XLSX, PPTX, CSV/JSON/XML, code, ZIP, image OCR)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from agent.errors import DocumentReadError
from agent.tools import readers
from agent.tools.readers import file_kind, read_file, resolve_inside


def _write_pdf(path: Path, text: str) -> None:
    """A minimal one-page PDF with `text` in Helvetica and a correct xref table."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    """The text drawn on a PDF page comes back from read_file."""
    p = tmp_path / "doc.pdf"
    _write_pdf(p, "Quarterly revenue was 42 million")
    assert "Quarterly revenue was 42 million" in read_file(p)


def test_docx_paragraphs_and_tables(tmp_path: Path) -> None:
    """DOCX paragraphs and table cells are both extracted."""
    import docx

    d = docx.Document()
    d.add_paragraph("The capital of Mars is Olympus.")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "height"
    table.rows[0].cells[1].text = "21 km"
    d.save(str(tmp_path / "a.docx"))
    text = read_file(tmp_path / "a.docx")
    assert "The capital of Mars is Olympus." in text
    assert "height\t21 km" in text


def test_xlsx_cells_per_sheet(tmp_path: Path) -> None:
    """XLSX cells come back tab-separated under a sheet header, formulas as cached values."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sales"
    ws.append(["item", "units"])
    ws.append(["apple", 12])
    wb.save(tmp_path / "s.xlsx")
    text = read_file(tmp_path / "s.xlsx")
    assert "# sheet: Sales" in text
    assert "apple\t12" in text


def test_pptx_slide_text(tmp_path: Path) -> None:
    """Text of each PPTX slide is extracted under its slide number."""
    from pptx import Presentation

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "Results"
    slide.placeholders[1].text = "Accuracy rose to 91 percent"
    prs.save(str(tmp_path / "p.pptx"))
    text = read_file(tmp_path / "p.pptx")
    assert "# slide 1" in text
    assert "Accuracy rose to 91 percent" in text


def test_csv_json_and_text(tmp_path: Path) -> None:
    """CSV rows, JSON values and plain text are returned as text."""
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    (tmp_path / "t.json").write_text(json.dumps({"answer": "blue whale"}))
    (tmp_path / "t.txt").write_text("plain words")
    assert read_file(tmp_path / "t.csv") == "a\tb\n1\t2"
    assert '"answer": "blue whale"' in read_file(tmp_path / "t.json")
    assert read_file(tmp_path / "t.txt") == "plain words"


def test_errors_are_clear(tmp_path: Path) -> None:
    """Unsupported types, missing files, broken files and truncation are reported clearly."""
    (tmp_path / "x.exe").write_bytes(b"MZ")
    with pytest.raises(DocumentReadError, match="unsupported file type"):
        read_file(tmp_path / "x.exe")
    with pytest.raises(DocumentReadError, match="not found"):
        read_file(tmp_path / "missing.pdf")
    (tmp_path / "broken.docx").write_bytes(b"not a zip")
    with pytest.raises(DocumentReadError, match=r"could not read broken\.docx"):
        read_file(tmp_path / "broken.docx")
    (tmp_path / "long.txt").write_text("x" * 100)
    assert read_file(tmp_path / "long.txt", max_chars=10).startswith(
        "x" * 10 + "\n[... truncated 90"
    )


def test_resolve_inside_refuses_escapes(tmp_path: Path) -> None:
    """Paths escaping the allowed folder (.., absolute, symlink) are refused."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.txt").write_text("fine")
    (tmp_path / "outside.txt").write_text("no")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    assert resolve_inside(root, "ok.txt") == (root / "ok.txt").resolve()
    for bad in ["../outside.txt", str(tmp_path / "outside.txt"), "link.txt"]:
        with pytest.raises(DocumentReadError, match="outside the allowed folder"):
            resolve_inside(root, bad)


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract binary not installed")
def test_image_ocr_reads_rendered_text(tmp_path: Path) -> None:
    """OCR recovers words rendered into a PNG."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (900, 160), "white")
    font = ImageFont.load_default(size=56)
    ImageDraw.Draw(img).text((20, 40), "HELLO MEMENTO 2024", fill="black", font=font)
    img.save(tmp_path / "t.png")
    text = read_file(tmp_path / "t.png")
    assert "HELLO" in text and "MEMENTO" in text and "2024" in text, text


def test_image_without_tesseract_gives_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the tesseract binary is missing, reading an image raises a clear error."""
    from PIL import Image

    Image.new("RGB", (10, 10), "white").save(tmp_path / "blank.png")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DocumentReadError, match="OCR unavailable"):
        read_file(tmp_path / "blank.png")


def test_code_and_markup_are_read_as_text(tmp_path: Path) -> None:
    """Source code, SQL, YAML, HTML and XML come back verbatim."""
    files = {
        "a.py": "def f():\n    return 42\n",
        "q.sql": "SELECT name FROM t WHERE x > 3;",
        "c.yaml": "key: value\n",
        "p.html": "<html><body><p>Hi</p></body></html>",
        "d.xml": '<?xml version="1.0"?><root><item id="7">seven</item></root>',
        "m.java": "class A { int x = 1; }",
    }
    for name, body in files.items():
        (tmp_path / name).write_text(body)
        assert read_file(tmp_path / name) == body, name


def test_tsv_and_jsonld(tmp_path: Path) -> None:
    """TSV is split on tabs; JSON-LD is pretty-printed like JSON."""
    (tmp_path / "t.tsv").write_text("a\tb,c\n1\t2\n")
    assert read_file(tmp_path / "t.tsv") == "a\tb,c\n1\t2"
    (tmp_path / "p.jsonld").write_text(json.dumps({"@type": "Person", "name": "Ada"}))
    text = read_file(tmp_path / "p.jsonld")
    assert '"@type": "Person"' in text and '"name": "Ada"' in text


def _make_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_zip_lists_members_and_reads_one_with_its_own_reader(tmp_path: Path) -> None:
    """A ZIP gives its listing; member= reads a CSV and an XLSX inside it with their readers."""
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["city", "pop"])
    wb.active.append(["Oslo", 709000])
    wb.save(tmp_path / "inner.xlsx")
    _make_zip(
        tmp_path / "data.zip",
        {
            "inner/table.csv": b"x,y\n3,4\n",
            "book.xlsx": (tmp_path / "inner.xlsx").read_bytes(),
        },
    )
    listing = read_file(tmp_path / "data.zip")
    assert "inner/table.csv\t8 bytes" in listing and "book.xlsx" in listing
    assert "member=" in listing
    assert read_file(tmp_path / "data.zip", member="inner/table.csv") == "x\ty\n3\t4"
    assert "Oslo\t709000" in read_file(tmp_path / "data.zip", member="book.xlsx")
    with pytest.raises(DocumentReadError, match=r"no member 'nope\.csv'"):
        read_file(tmp_path / "data.zip", member="nope.csv")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(DocumentReadError, match=r"only applies to \.zip"):
        read_file(tmp_path / "t.txt", member="a")


def test_zip_slip_and_huge_members_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members named with .. or an absolute path, and members over the size cap, are refused."""
    _make_zip(
        tmp_path / "evil.zip", {"../escape.txt": b"x", "/abs.txt": b"y", "big.txt": b"z" * 100}
    )
    with pytest.raises(DocumentReadError, match="unsafe archive member"):
        read_file(tmp_path / "evil.zip", member="../escape.txt")
    assert not (tmp_path / "escape.txt").exists()
    monkeypatch.setattr(readers, "MAX_ZIP_MEMBER_BYTES", 50)
    with pytest.raises(DocumentReadError, match="too large"):
        read_file(tmp_path / "evil.zip", member="big.txt")


def test_audio_video_and_unknown_binaries_give_clear_errors(tmp_path: Path) -> None:
    """Audio/video need a transcription endpoint; other binary types are unsupported."""
    for name in ["voice.mp3", "clip.mov", "memo.m4a"]:
        (tmp_path / name).write_bytes(b"ID3\x00\x00fake")
        with pytest.raises(DocumentReadError, match=r"not supported offline.*transcription"):
            read_file(tmp_path / name)
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01")
    with pytest.raises(DocumentReadError, match=r"unsupported file type '\.bin'"):
        read_file(tmp_path / "blob.bin")
    assert [file_kind(Path(n)) for n in ["a.mp3", "b.MP4", "c.xlsx", "d.py", "e.zz"]] == [
        "audio",
        "video",
        "spreadsheet",
        "code/structured text",
        "unknown",
    ]
