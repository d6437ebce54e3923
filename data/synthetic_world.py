"""The planted structure of the synthetic Tianchi generator (the "world" events come from).

Everything here is drawn from `numpy.random.default_rng([seed, 0])`, so one seed gives one world:
categories with their own Chinese vocabulary, items with Zipf (long-tail) popularity, brands
and sellers, user segments that prefer a few categories and brands, and one planted next item
per item (same category) that sessions follow with probability `p_follow`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOCAB = [
    "新款",
    "韩版",
    "女装",
    "男装",
    "秋装",
    "冬装",
    "春秋",
    "修身",
    "宽松",
    "显瘦",
    "大码",
    "长袖",
    "短袖",
    "外套",
    "夹克",
    "风衣",
    "毛衣",
    "针织衫",
    "卫衣",
    "衬衫",
    "T恤",
    "打底衫",
    "连衣裙",
    "半身裙",
    "牛仔裤",
    "休闲裤",
    "打底裤",
    "西装",
    "棉衣",
    "羽绒服",
    "马甲",
    "背心",
    "套装",
    "加绒",
    "加厚",
    "保暖",
    "纯棉",
    "真丝",
    "雪纺",
    "蕾丝",
    "条纹",
    "格子",
    "印花",
    "刺绣",
    "纯色",
    "潮流",
    "百搭",
    "简约",
    "复古",
    "学院",
    "运动",
    "休闲",
    "商务",
    "正装",
    "青年",
    "中年",
    "学生",
    "女士",
    "男士",
    "儿童",
    "高腰",
    "低腰",
    "直筒",
    "小脚",
    "阔腿",
    "九分",
    "七分",
    "圆领",
    "V领",
    "立领",
    "连帽",
    "拉链",
    "单排扣",
    "双排扣",
    "口袋",
    "收腰",
    "弹力",
    "透气",
    "舒适",
    "柔软",
    "时尚",
    "气质",
    "优雅",
    "甜美",
    "可爱",
    "街头",
    "欧美",
    "日系",
    "英伦",
    "中长款",
    "短款",
    "长款",
    "宽松版",
    "正品",
    "包邮",
    "特价",
    "清仓",
    "热卖",
    "爆款",
    "皮鞋",
    "运动鞋",
    "帆布鞋",
    "靴子",
    "凉鞋",
    "单肩包",
    "双肩包",
    "手提包",
    "钱包",
    "腰带",
    "围巾",
    "帽子",
    "手表",
    "项链",
    "耳环",
    "手机",
    "耳机",
    "充电器",
    "数据线",
    "保护壳",
    "键盘",
    "鼠标",
    "台灯",
    "水杯",
    "毛巾",
    "床单",
    "被套",
    "枕头",
    "收纳",
    "拖鞋",
]
"""Word pool; each category draws its own sub-vocabulary from it."""

REVIEW_PHRASES = [
    "质量 很 好",
    "物流 很快",
    "性价比 高",
    "穿 起来 舒服",
    "尺码 偏 小",
    "颜色 很 正",
    "做工 不错",
    "还 可以",
    "非常 满意",
    "和 图片 一样",
    "面料 柔软",
    "值得 购买",
    "赞 一个 ！",
]
"""Phrases composed into review texts."""


@dataclass(frozen=True)
class World:
    """Planted structure; arrays are indexed by 0-based item/user index (id = index + 1)."""

    category_names: list[str]
    """Category label per category index, e.g. `2-3` (top level - sub level)."""
    category_vocab: list[list[str]]
    """Title words of each category."""
    item_category: np.ndarray
    """(items,) int: category index of each item."""
    item_brand: np.ndarray
    """(items,) int: brand index of each item."""
    item_seller: np.ndarray
    """(items,) int: seller index of each item."""
    item_popularity: np.ndarray
    """(items,) float: Zipf weight of each item."""
    brand_shown: np.ndarray
    """(items,) bool: False where the product file shows `null` as the brand."""
    transitions: np.ndarray
    """(items,) int: planted next item index of each item (same category, not itself)."""
    segment_categories: np.ndarray
    """(segments, k) int: preferred category indices of each segment."""
    segment_category_weights: np.ndarray
    """(segments, k) float: probability of each preferred category (rows sum to 1)."""
    segment_brands: list[list[int]]
    """Preferred brand indices of each segment (boosted inside its preferred categories)."""
    user_segment: np.ndarray
    """(users,) int: segment of each user."""
    user_activity: np.ndarray
    """(users,) float: relative activity (long-tailed)."""


def build_world(
    *,
    seed: int,
    users: int,
    items: int,
    n_categories: int,
    n_segments: int,
    categories_per_segment: int,
    zipf_exponent: float,
    null_brand_rate: float,
) -> World:
    """Draw the planted structure for one seed."""
    assert items >= 2 * n_categories, f"need >= 2 items per category: {items=} {n_categories=}"
    assert categories_per_segment <= n_categories, f"{categories_per_segment=} {n_categories=}"
    rng = np.random.default_rng([seed, 0])
    names = [f"{c // 4 + 1}-{c % 4 + 1}" for c in range(n_categories)]
    vocab_size = min(24, len(VOCAB))
    vocab = [list(rng.choice(VOCAB, size=vocab_size, replace=False)) for _ in range(n_categories)]
    # every category gets at least two items; the rest are spread at random
    item_category = np.concatenate(
        [
            np.repeat(np.arange(n_categories), 2),
            rng.integers(0, n_categories, items - 2 * n_categories),
        ]
    )
    rng.shuffle(item_category)
    ranks = rng.permutation(items) + 1
    popularity = 1.0 / ranks.astype(np.float64) ** zipf_exponent
    brands_per_cat = max(3, items // (20 * n_categories))
    item_brand = item_category * brands_per_cat + rng.integers(0, brands_per_cat, items)
    item_seller = rng.integers(0, max(10, items // 20), items)
    brand_shown = rng.random(items) >= null_brand_rate

    transitions = np.empty(items, dtype=np.int64)
    for c in range(n_categories):
        members = np.flatnonzero(item_category == c)
        cdf = np.cumsum(popularity[members])
        pick = np.searchsorted(cdf, rng.random(members.size) * cdf[-1], side="right")
        pick = np.minimum(pick, members.size - 1)
        same = members[pick] == members
        pick[same] = (pick[same] + 1) % members.size
        transitions[members] = members[pick]

    seg_cats = np.stack(
        [
            rng.choice(n_categories, size=categories_per_segment, replace=False)
            for _ in range(n_segments)
        ]
    )
    raw_w = rng.dirichlet(np.full(categories_per_segment, 4.0), size=n_segments)
    seg_brands = [
        sorted(
            int(b)
            for c in seg_cats[s]
            for b in rng.choice(brands_per_cat, size=min(3, brands_per_cat), replace=False)
            + c * brands_per_cat
        )
        for s in range(n_segments)
    ]
    return World(
        category_names=names,
        category_vocab=vocab,
        item_category=item_category,
        item_brand=item_brand,
        item_seller=item_seller,
        item_popularity=popularity,
        brand_shown=brand_shown,
        transitions=transitions,
        segment_categories=seg_cats,
        segment_category_weights=raw_w,
        segment_brands=seg_brands,
        user_segment=rng.integers(0, n_segments, users),
        user_activity=rng.lognormal(0.0, 1.0, users),
    )


def item_titles(world: World, seed: int, lo: int, hi: int) -> list[str]:
    """Word-segmented Chinese titles of items lo..hi-1, from each item's category vocabulary."""
    rng = np.random.default_rng([seed, 1, lo])
    titles = []
    for i in range(lo, hi):
        words = world.category_vocab[int(world.item_category[i])]
        n = int(rng.integers(5, 11))
        titles.append(
            "2014 " + " ".join(words[j] for j in rng.choice(len(words), n, replace=False))
        )
    return titles
