"""The default packaged Qwen model ranks obviously related items first (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.llm.prompts import CaseExample, HistoryItem, PromptBuilder, PromptConfig
from recsys.llm.ranker import LLMRanker

# (history, related candidate, unrelated candidates); the related one is never listed first
PROBES = [
    (
        [HistoryItem("苹果 iPhone 15 手机 128GB", "alipay")],
        "手机壳 透明防摔",
        ["连衣裙 夏季 碎花", "狗粮 成犬 10kg"],
    ),
    (
        [HistoryItem("婴儿奶粉 1段", "cart"), HistoryItem("纸尿裤 新生儿", "click")],
        "婴儿奶瓶 宽口径",
        ["机械键盘 青轴", "高尔夫球杆"],
    ),
    ([HistoryItem("跑步鞋 男款 缓震", "alipay")], "运动袜 男 速干", ["电饭煲 4L", "口红 哑光"]),
    ([HistoryItem("咖啡豆 意式拼配", "alipay")], "手冲咖啡壶 细口", ["汽车轮胎", "儿童绘本"]),
]


@pytest.mark.slow
def test_qwen_related_candidate_outranks_unrelated() -> None:
    """On fixed Chinese probes the related item gets the highest likelihood score."""
    ranker = LLMRanker.from_name("qwen2.5-0.5b")
    builder = PromptBuilder(PromptConfig(lang="zh"), count_tokens=ranker.count_tokens)
    wins = 0
    for history, related, unrelated in PROBES:
        cands = [unrelated[0], related, unrelated[1]]
        prompt = builder.build(history, [CaseExample("买了手机", "钢化膜", True)], cands)
        scores = ranker.rank(prompt.text, cands)
        wins += int(np.argmax(scores) == 1)
    assert wins == len(PROBES), f"{wins}/{len(PROBES)} probes ranked right"
