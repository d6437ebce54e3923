"""OpenAI-compatible backend against a real HTTP server on loopback started by the test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from recsys.llm.errors import LLMBackendError
from recsys.llm.openai_backend import OpenAIConfig, OpenAIRanker
from recsys.llm.protocol import FrozenLLM


def char_logprob(text: str, i: int) -> float:
    """The fake model: a character seen earlier in the text is likely (-0.1), else -3."""
    return -0.1 if text[i] in text[:i] else -3.0


class FakeServer:
    """Behaviour switches of the loopback server."""

    def __init__(self) -> None:
        self.fail_next = 0  # answer 500 to this many requests
        self.echo = True  # False: /completions answers 404 (chat-only server)
        self.delay_s = 0.0
        self.chat_answer = "2, 3"
        self.requests: list[str] = []


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(self.path)
            time.sleep(state.delay_s)
            if state.fail_next > 0:
                state.fail_next -= 1
                self._send(500, {"error": {"message": "boom", "type": "server_error"}})
                return
            if self.path.endswith("/completions") and "chat" not in self.path:
                if not state.echo:
                    self._send(404, {"error": {"message": "no completions here"}})
                    return
                choices = []
                for k, text in enumerate(body["prompt"]):
                    lp = {
                        "tokens": list(text),
                        "token_logprobs": [None]
                        + [char_logprob(text, i) for i in range(1, len(text))],
                        "text_offset": list(range(len(text))),
                        "top_logprobs": None,
                    }
                    choices.append(
                        {"index": k, "text": text, "logprobs": lp, "finish_reason": "length"}
                    )
                self._send(
                    200,
                    {
                        "id": "c",
                        "object": "text_completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": choices,
                    },
                )
                return
            answer = state.chat_answer
            message = {"role": "assistant", "content": answer}
            self._send(
                200,
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                },
            )

    return Handler


@pytest.fixture()
def server() -> Iterator[tuple[FakeServer, str]]:
    """A threaded OpenAI-compatible server on 127.0.0.1 with a free port."""
    state = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def _ranker(url: str, **kw: Any) -> OpenAIRanker:
    return OpenAIRanker(OpenAIConfig(base_url=url, model="fake", backoff_s=0.01, **kw))


def test_echo_logprob_scores_match_oracle(server: tuple[FakeServer, str]) -> None:
    """Scores are the mean echoed logprob of the candidate's characters."""
    _, url = server
    prompt, cands = "phone case shop: ", ["phone", "xyz"]
    ranker = _ranker(url, mode="echo")
    assert isinstance(ranker, FrozenLLM)
    scores = ranker.rank(prompt, cands)
    for c, got in zip(cands, scores, strict=True):
        text = prompt + c
        expected = np.mean([char_logprob(text, i) for i in range(len(prompt), len(text))])
        assert got == pytest.approx(expected)
    assert scores[0] > scores[1]


def test_retries_transient_errors_with_backoff(server: tuple[FakeServer, str]) -> None:
    """Two 500s are retried and the third attempt succeeds."""
    state, url = server
    state.fail_next = 2
    ranker = _ranker(url, mode="echo", max_retries=3)
    assert ranker.rank("ab", ["a", "c"]).shape == (2,)
    assert ranker.attempts == 3


def test_gives_up_with_clear_error(server: tuple[FakeServer, str]) -> None:
    """Persistent 500s end in LLMBackendError naming the attempts."""
    state, url = server
    state.fail_next = 100
    with pytest.raises(LLMBackendError, match="after 3 attempts"):
        _ranker(url, mode="echo", max_retries=2).rank("ab", ["a"])


def test_timeout_is_reported(server: tuple[FakeServer, str]) -> None:
    """A server slower than the timeout raises LLMBackendError (timeout), not a hang."""
    state, url = server
    state.delay_s = 1.0
    with pytest.raises(LLMBackendError, match="Timeout"):
        _ranker(url, mode="echo", timeout_s=0.2, max_retries=1).rank("ab", ["a"])


def test_auto_falls_back_to_listwise(server: tuple[FakeServer, str]) -> None:
    """Without /completions the auto mode uses the chat ordering: named first, omitted last."""
    state, url = server
    state.echo = False
    state.chat_answer = "2, 3"
    ranker = _ranker(url, mode="auto")
    scores = ranker.rank("用户买了手机\n", ["连衣裙", "手机壳", "充电器", "狗粮"])
    assert list(np.argsort(-scores, kind="stable")) == [1, 2, 0, 3]
    requests = len(state.requests)
    ranker.rank("x\n", ["a", "b"])
    assert state.requests[requests:] == ["/v1/chat/completions"]  # echo not retried


def test_explain_via_chat(server: tuple[FakeServer, str]) -> None:
    """Explanations come from the chat endpoint, first line only."""
    state, url = server
    state.chat_answer = "因为用户刚买了手机。\n第二行"
    assert _ranker(url).explain("用户买了手机\n", "手机壳") == "因为用户刚买了手机。"
