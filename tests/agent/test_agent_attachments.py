"""Tests of the attachment descriptions for the planner/executor and of the attachment tools."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.attachments import AttachmentInfo, describe_attachments, inspect_attachment
from agent.tools.client import ToolClient
from agent.tools.config import ToolServerConfig
from agent.tools.sandbox import SandboxConfig, default_python_paths, detect_backend


@pytest.fixture
def files() -> Iterator[Path]:
    """A folder (readable by the sandbox user) with one attachment of each common GAIA type."""
    import docx
    import openpyxl
    from pptx import Presentation

    with tempfile.TemporaryDirectory(dir="/tmp", prefix="memento-att-") as tmp:
        root = Path(tmp)
        wb = openpyxl.Workbook()
        wb.active.title = "Sales"
        wb.active.append(["item", "units"])
        wb.active.append(["apple", 12])
        wb.save(root / "sales.xlsx")
        (root / "x.csv").write_text("item,units\napple,12\npear,30\n")
        (root / "meta.json").write_text(json.dumps({"answer": "blue whale"}))
        (root / "voice.mp3").write_bytes(b"ID3\x03\x00fake audio")
        d = docx.Document()
        d.add_paragraph("The capital of Mars is Olympus.")
        d.save(str(root / "note.docx"))
        prs = Presentation()
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = "Results"
        prs.save(str(root / "deck.pptx"))
        (root / "sub").mkdir()
        (root / "sub" / "code.py").write_text("print('hi')\n")
        with zipfile.ZipFile(root / "bundle.zip", "w") as zf:
            zf.writestr("inner/table.csv", "x,y\n3,4\n")
        for p in [root, *root.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        yield root


def test_describe_lists_name_type_size_and_extract(files: Path) -> None:
    """Each attachment appears with its name, kind, size and the start of its text."""
    names = ["sales.xlsx", "x.csv", "meta.json", "note.docx", "deck.pptx", "bundle.zip"]
    text = describe_attachments([files / n for n in names])
    assert text.startswith("Attached files (6).")
    assert 'read_file(path="sales.xlsx")' in text and "/attachments/sales.xlsx" in text
    for name in names:
        assert f"### {name}\n" in text
    assert "type: spreadsheet (.xlsx)" in text and "# sheet: Sales\nitem\tunits\napple\t12" in text
    assert "type: csv table (.csv); size: 28 bytes" in text and "pear\t30" in text
    assert '"answer": "blue whale"' in text
    assert "The capital of Mars is Olympus." in text
    assert "# slide 1\nResults" in text
    assert "type: zip archive (.zip)" in text and "inner/table.csv\t8 bytes" in text


def test_unreadable_attachment_shows_the_reason(files: Path) -> None:
    """An audio file is listed with the 'not supported offline' reason instead of an extract."""
    info = inspect_attachment(files / "voice.mp3")
    assert (info.name, info.kind, info.size_bytes, info.extract) == (
        "voice.mp3",
        "audio (.mp3)",
        15,
        "",
    )
    assert info.error is not None and "transcription endpoint" in info.error
    text = describe_attachments([files / "voice.mp3"])
    assert "cannot be read: " in text and "not supported offline" in text


def test_extract_is_cut_and_names_are_relative_to_root(files: Path) -> None:
    """`extract_chars` bounds the extract; with `root`, names are paths relative to it."""
    (files / "long.txt").write_text("word " * 1000)
    info = inspect_attachment(files / "long.txt", chars=50)
    assert isinstance(info, AttachmentInfo) and info.error is None
    assert (
        info.extract.startswith("word " * 10) and "[... truncated 4950 characters]" in info.extract
    )
    text = describe_attachments([files / "sub" / "code.py"], extract_chars=100, root=files)
    assert "### sub/code.py" in text and 'read_file(path="sub/code.py")' in text
    assert "print('hi')" in text


def test_no_attachments_give_empty_text() -> None:
    """Without attachments there is nothing to add to the prompt."""
    assert describe_attachments([]) == ""


def test_read_file_tool_reads_zip_member(files: Path) -> None:
    """The read_file tool lists a ZIP and reads one member of it with `member`."""
    with ToolClient.in_process(ToolServerConfig(files_root=files)) as client:
        listing = client.call_tool("read_file", {"path": "bundle.zip"})
        assert listing.data is not None and "inner/table.csv" in listing.data["text"]
        r = client.call_tool("read_file", {"path": "bundle.zip", "member": "inner/table.csv"})
        assert r.data is not None and r.data["text"] == "x\ty\n3\t4", r.text
        bad = client.call_tool("read_file", {"path": "voice.mp3"})
        assert bad.is_error and "transcription endpoint" in bad.text


@pytest.mark.skipif(detect_backend() != "bwrap", reason="/attachments needs the bwrap backend")
def test_run_python_tool_reads_attachments_with_pandas(files: Path) -> None:
    """run_python sees files_root read-only at /attachments and can use pandas on it."""
    if not default_python_paths():
        pytest.skip("pandas not available to the sandbox interpreter")
    cfg = ToolServerConfig(files_root=files, sandbox=SandboxConfig(timeout_s=20))
    code = (
        "import pandas as pd\n"
        "print(int(pd.read_csv('/attachments/x.csv')['units'].sum()))\n"
        "print(pd.read_excel('/attachments/sales.xlsx')['units'].iloc[0])\n"
        "open('/attachments/x.csv', 'w')\n"
    )
    with ToolClient.in_process(cfg) as client:
        r = client.call_tool("run_python", {"code": code}, timeout_s=30)
    assert r.data is not None, r.text
    assert r.data["stdout"].split() == ["42", "12"], r.data["stderr"]
    assert "Error" in r.data["stderr"] and r.data["returncode"] != 0
    assert (files / "x.csv").read_text() == "item,units\napple,12\npear,30\n"
