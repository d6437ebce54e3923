"""`memento bench llm`: cost of likelihood ranking with a cached prefix vs its baselines.

All figures are medians over `repeats`, measured in one run on one model:
- prefix_forward_ms: one forward over the ~300-token prompt (logits of the last position).
- floor_ms: one forward over a single sequence as long as prompt + all candidates' tokens,
  logits only at the candidate positions (the compute floor of scoring them all).
- rank20_ms: the whole `LLMRanker.rank` call (prefix included; score and prefix caches off).
- naive_ms: one forward of prompt + candidate per candidate (logits only where needed).
- batch8_rps: requests per second of `rank_batch` over 8 different requests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["bench_llm"]

_CANDIDATES = [
    "手机壳 透明防摔 硅胶",
    "钢化膜 全屏覆盖 高清",
    "无线充电器 快充 15W",
    "蓝牙耳机 降噪 入耳式",
    "连衣裙 夏季 碎花 雪纺",
    "狗粮 成犬 通用型 10kg",
    "电饭煲 智能 4L 家用",
    "口红 哑光 正红色",
    "跑步鞋 男款 缓震 透气",
    "机械键盘 青轴 87键",
    "婴儿纸尿裤 新生儿 NB码",
    "保温杯 不锈钢 500ml",
    "充电宝 20000毫安 超薄",
    "数据线 Type-C 1米 编织",
    "儿童绘本 睡前故事 全10册",
    "洗发水 去屑 控油 750ml",
    "瑜伽垫 加厚 防滑",
    "车载手机支架 出风口",
    "平板电脑 保护套 磁吸",
    "手机自拍杆 三脚架 蓝牙",
]
_TITLES = [
    "苹果 iPhone 15 手机 128GB 黑色",
    "华为 Mate 60 Pro 手机",
    "小米 14 手机 徕卡影像",
    "手机壳 磨砂 防指纹",
    "快充充电头 65W 氮化镓",
    "智能手表 运动 心率监测",
    "蓝牙音箱 便携 防水",
    "笔记本电脑 轻薄 14英寸",
]


def _prompt(variant: int, count: Callable[[str], int], tokens: int) -> str:
    """A realistic Chinese ranking prompt of about `tokens` tokens."""
    from recsys.llm.prompts import CaseExample, HistoryItem, PromptBuilder, PromptConfig

    actions = ["click", "collect", "cart", "alipay"]
    history = [
        HistoryItem(f"{_TITLES[(i + variant) % len(_TITLES)]} 第{i}款", actions[i % 4])
        for i in range(40)
    ]
    cases = [
        CaseExample(f"浏览了{_TITLES[(i + variant) % 8]}", _CANDIDATES[(i * 3) % 20], i % 3 != 2)
        for i in range(4)
    ]
    config = PromptConfig(lang="zh", max_prompt_tokens=tokens, max_history=40, max_cases=4)
    return PromptBuilder(config, count).build(history, cases, _CANDIDATES).text


def _median_ms(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of `fn` in milliseconds (after one warm-up call)."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def bench_llm(
    model: str = "qwen2.5-0.5b",
    device: str = "cpu",
    repeats: int = 3,
    prompt_tokens: int = 300,
    batch_requests: int = 8,
) -> dict[str, Any]:
    """Measure the figures listed in the module docstring; returns a JSON-able dict."""
    import torch

    from recsys.llm.protocol import RankRequest
    from recsys.llm.ranker import LLMRanker, RankerConfig

    config = RankerConfig(score_cache_size=0, prefix_cache_size=0, batch_requests=batch_requests)
    ranker = LLMRanker.from_name(model, dtype="bfloat16", device=device, config=config)
    lm, dev = ranker.model, ranker.device

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    prompt = _prompt(0, ranker.count_tokens, prompt_tokens)
    ids = ranker.encode_prompt(prompt)
    cand_tokens = [ranker.encode_candidate(c) for c in _CANDIDATES]
    n_cand_tokens = sum(len(c) for c in cand_tokens)
    prefix = torch.tensor([ids], device=dev)
    full = torch.tensor([ids + [t for c in cand_tokens for t in c]], device=dev)

    @torch.inference_mode()
    def prefix_forward() -> None:
        lm(input_ids=prefix, logits_to_keep=1)

    @torch.inference_mode()
    def floor() -> None:
        lm(input_ids=full, logits_to_keep=n_cand_tokens)

    requests = [
        RankRequest(_prompt(v, ranker.count_tokens, prompt_tokens), tuple(_CANDIDATES))
        for v in range(batch_requests)
    ]
    out: dict[str, Any] = {
        "model": model,
        "device": str(dev),
        "dtype": "bfloat16",
        "torch_threads": torch.get_num_threads(),
        "repeats": repeats,
        "prompt_tokens": len(ids),
        "n_candidates": len(_CANDIDATES),
        "candidate_tokens": n_cand_tokens,
        "prefix_forward_ms": _median_ms(prefix_forward, repeats, sync),
        "floor_ms": _median_ms(floor, repeats, sync),
        "rank20_ms": _median_ms(lambda: ranker.rank(prompt, _CANDIDATES), repeats, sync),
        "naive_ms": _median_ms(lambda: ranker.score_naive(prompt, _CANDIDATES), repeats, sync),
    }
    batch_ms = _median_ms(lambda: ranker.rank_batch(requests), repeats, sync)
    seq_ms = _median_ms(lambda: [ranker.rank(r.prompt, r.candidates) for r in requests], 1, sync)
    out["batch_requests"] = batch_requests
    out["batch_rps"] = batch_requests / (batch_ms / 1000.0)
    out["sequential_rps"] = batch_requests / (seq_ms / 1000.0)
    out["rank20_over_floor"] = out["rank20_ms"] / out["floor_ms"]
    out["rank20_over_naive"] = out["rank20_ms"] / out["naive_ms"]
    out["goal_floor_1.3x_met"] = out["rank20_over_floor"] <= 1.3
    out["goal_naive_0.2x_met"] = out["rank20_over_naive"] <= 0.2
    return out
