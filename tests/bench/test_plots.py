"""Learning-curve and comparison plots are written as real, non-blank PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from bench.plots import plot_comparison, plot_learning_curves

CURVES = {
    "no-memory": [[0.10, 0.10, 0.11], [0.09, 0.10, 0.10]],
    "non-parametric": [[0.10, 0.14, 0.16], [0.11, 0.13, 0.17]],
    "soft-q": [[0.10, 0.18, 0.25], [0.12, 0.20, 0.24]],
}


def _pixels(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return np.asarray(mpimg.imread(path))


def test_learning_curve_png_is_nontrivial(tmp_path: Path) -> None:
    """The curve plot is a sizeable PNG with many distinct colours (lines, bands, legend)."""
    out = plot_learning_curves(CURVES, tmp_path / "sub" / "curve.png")
    img = _pixels(out)
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert out.stat().st_size > 10_000
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 50


def test_learning_curve_depends_on_data(tmp_path: Path) -> None:
    """Different curves give different images; minmax spread also renders."""
    a = _pixels(plot_learning_curves(CURVES, tmp_path / "a.png"))
    b = _pixels(plot_learning_curves({"soft-q": CURVES["soft-q"]}, tmp_path / "b.png"))
    three = {"soft-q": [[0.1, 0.2], [0.1, 0.3], [0.1, 0.9]]}  # with 2 seeds std == half range
    c = _pixels(plot_learning_curves(three, tmp_path / "c.png", spread="std"))
    d = _pixels(plot_learning_curves(three, tmp_path / "d.png", spread="minmax"))
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert not np.array_equal(c, d)


def test_comparison_bar_chart(tmp_path: Path) -> None:
    """The bar chart is written, and a taller bar changes the picture."""
    vals = {"popularity": [0.07, 0.08], "BPR": [0.085], "soft-q": [0.09, 0.1, 0.11]}
    a = _pixels(plot_comparison(vals, tmp_path / "cmp.png", metric="ndcg@10"))
    b = _pixels(plot_comparison({**vals, "BPR": [0.5]}, tmp_path / "cmp2.png"))
    assert (tmp_path / "cmp.png").stat().st_size > 10_000
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_bad_inputs_raise(tmp_path: Path) -> None:
    """Ragged per-seed curves and empty inputs are rejected."""
    with pytest.raises(ValueError):
        plot_learning_curves({"x": [[0.1, 0.2], [0.1]]}, tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot_comparison({}, tmp_path / "y.png")
