"""Tests of audio transcription in `read_file` against a loopback OpenAI-compatible endpoint."""

from __future__ import annotations

import functools
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.attachments import describe_attachments
from agent.errors import DocumentReadError
from agent.tools.client import ToolClient
from agent.tools.config import ToolServerConfig, TranscribeConfig
from agent.tools.readers import Transcriber, read_file, transcribe_audio

AUDIO = b"ID3\x03\x00\x00fake mp3 frames \x00\xff\xfb"
TRANSCRIPT = "the code is 4821"


@dataclass
class _Upload:
    """One request the fake endpoint received, its multipart form parsed."""

    path: str
    authorization: str | None
    fields: dict[str, bytes] = field(default_factory=dict)
    filenames: dict[str, str | None] = field(default_factory=dict)


@dataclass
class _Endpoint:
    """State of the fake transcription server: what it answers and what it received."""

    url: str
    status: int = 200
    uploads: list[_Upload] = field(default_factory=list)


def _parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, bytes], dict[str, str | None]]:
    msg = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert msg.is_multipart(), content_type
    fields: dict[str, bytes] = {}
    filenames: dict[str, str | None] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str), part
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        fields[name] = payload
        filenames[name] = part.get_filename()
    return fields, filenames


@pytest.fixture
def endpoint() -> Iterator[_Endpoint]:
    state = _Endpoint(url="")

    class _Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fields, filenames = _parse_multipart(self.headers["Content-Type"], body)
            state.uploads.append(
                _Upload(self.path, self.headers.get("Authorization"), fields, filenames)
            )
            if state.status == 200:
                payload = json.dumps({"text": TRANSCRIPT}).encode()
                ctype = "application/json"
            else:
                payload, ctype = b"upstream model crashed", "text/plain"
            self.send_response(state.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "voice.mp3").write_bytes(AUDIO)
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 fake video")
    return tmp_path


def _transcriber(url: str, **kw: Any) -> Transcriber:
    return functools.partial(transcribe_audio, cfg=TranscribeConfig(url=url, **kw))


def test_audio_is_transcribed_through_the_endpoint(
    endpoint: _Endpoint, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_file uploads the file bytes and the model as multipart and returns the 'text'."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    text = read_file(files / "voice.mp3", transcriber=_transcriber(endpoint.url, model="tiny"))
    assert text == TRANSCRIPT
    [up] = endpoint.uploads
    assert up.path == "/v1/audio/transcriptions"
    assert up.fields == {"file": AUDIO, "model": b"tiny"}
    assert up.filenames["file"] == "voice.mp3"
    assert up.authorization == "Bearer sk-test"


def test_explicit_key_wins_and_no_key_sends_no_header(
    endpoint: _Endpoint, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured api_key is sent as given; with none and no env variable, no header is sent."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    read_file(files / "voice.mp3", transcriber=_transcriber(endpoint.url, api_key="sk-cfg"))
    monkeypatch.delenv("OPENAI_API_KEY")
    read_file(files / "voice.mp3", transcriber=_transcriber(endpoint.url))
    assert [u.authorization for u in endpoint.uploads] == ["Bearer sk-cfg", None]
    assert "sk-cfg" not in repr(TranscribeConfig(url="x", api_key="sk-cfg"))


def test_without_transcriber_audio_stays_unsupported(files: Path) -> None:
    """No transcriber: the existing 'not supported offline' error remains."""
    with pytest.raises(DocumentReadError, match=r"not supported offline.*transcription endpoint"):
        read_file(files / "voice.mp3")


def test_video_asks_for_the_audio_track(endpoint: _Endpoint, files: Path) -> None:
    """Video is refused with or without a transcriber, saying to extract its audio first."""
    for transcriber in (None, _transcriber(endpoint.url)):
        with pytest.raises(DocumentReadError, match=r"extract the audio track first"):
            read_file(files / "clip.mp4", transcriber=transcriber)
    assert endpoint.uploads == []


def test_server_error_is_a_clear_document_read_error(endpoint: _Endpoint, files: Path) -> None:
    """An HTTP 500 names the status, the endpoint and the body of the answer."""
    endpoint.status = 500
    with pytest.raises(DocumentReadError) as err:
        read_file(files / "voice.mp3", transcriber=_transcriber(endpoint.url))
    msg = str(err.value)
    assert "HTTP 500" in msg and f"{endpoint.url}/audio/transcriptions" in msg, msg
    assert "upstream model crashed" in msg and "voice.mp3" in msg, msg


def test_unreachable_endpoint_and_oversized_file(endpoint: _Endpoint, files: Path) -> None:
    """A closed port gives 'unreachable'; a file over max_bytes is refused before any upload."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(DocumentReadError, match=r"unreachable"):
        read_file(files / "voice.mp3", transcriber=_transcriber(dead, timeout_s=5.0))
    with pytest.raises(DocumentReadError, match=rf"{len(AUDIO)} bytes, over the 8-byte"):
        read_file(files / "voice.mp3", transcriber=_transcriber(endpoint.url, max_bytes=8))
    assert endpoint.uploads == []


def test_transcript_is_truncated_like_other_text(endpoint: _Endpoint, files: Path) -> None:
    """max_chars applies to the transcript too."""
    text = read_file(files / "voice.mp3", max_chars=8, transcriber=_transcriber(endpoint.url))
    assert text == "the code\n[... truncated 8 characters]"


def test_attachments_extract_uses_the_transcriber(endpoint: _Endpoint, files: Path) -> None:
    """describe_attachments shows the transcript as the audio file's extract when given one."""
    text = describe_attachments([files / "voice.mp3"], transcriber=_transcriber(endpoint.url))
    assert TRANSCRIPT in text and "cannot be read" not in text


def test_read_file_tool_transcribes_with_configured_endpoint(
    endpoint: _Endpoint, files: Path
) -> None:
    """The MCP read_file tool returns the transcript when the server has a transcribe URL."""
    cfg = ToolServerConfig(files_root=files, transcribe=TranscribeConfig(url=endpoint.url))
    with ToolClient.in_process(cfg) as client:
        r = client.call_tool("read_file", {"path": "voice.mp3"})
        assert r.data is not None and r.data["text"] == TRANSCRIPT, r.text
        bad = client.call_tool("read_file", {"path": "clip.mp4"})
        assert bad.is_error and "extract the audio track first" in bad.text
    assert [u.fields["model"] for u in endpoint.uploads] == [b"whisper-1"]
