"""The LLM ranking path on a real server: the tiny packaged SmolLM2 ranks and explains."""

from __future__ import annotations

from pathlib import Path

import httpx

from serving.process import ServerProcess
from serving.testing import AUTH, READ_AUTH, server_env


def test_llm_ranking_path_ranks_and_explains(tmp_path: Path) -> None:
    """With MEMENTO_LLM=smollm2-135m the items are LLM-ranked and the explanation generated."""
    env = server_env(tmp_path / "db.sqlite3", MEMENTO_LLM="smollm2-135m")
    server = ServerProcess(env, log=tmp_path / "server.log").start(timeout_s=180)
    with server, httpx.Client(base_url=server.url, timeout=120) as c:
        events = [{"item_id": i} for i in ("red wool scarf", "winter gloves")]
        c.post("/v1/events", headers=AUTH, json={"user_id": "w", "events": events})
        for item in ("warm winter hat", "beach sandals", "wool socks"):
            case = {"user_id": "s", "items": [item], "recent_events": events}
            assert c.post("/v1/cases", headers=AUTH, json=case).status_code == 201
        body = {"user_id": "w", "n": 4, "explain": True}
        r = c.post("/v1/recommend", json=body, headers=READ_AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
    scores = [i["score"] for i in body["items"]]
    assert body["cases"] and body["items"]
    assert scores == sorted(scores, reverse=True)
    why = body["explanation"]
    assert isinstance(why, str) and why.strip() and "mu=" not in why  # generated, not templated
