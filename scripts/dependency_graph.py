"""Draw the package dependency picture of the README from the code's own imports.

    .venv/bin/python scripts/dependency_graph.py            # writes docs/img/dependencies.png
    .venv/bin/python scripts/dependency_graph.py --check    # exit 1 if the edges changed

Every import of every module counts, function-local ones included (the scanner of
`tests/test_import_boundaries.py`, loaded from that file so that there is one copy of it). An
arrow A -> B means modules of A import modules of B; its label is the number of import lines.
The edge list is kept beside the image (docs/img/dependencies.txt) so `--check` can tell
whether an arrow of the committed picture appeared or went away.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img" / "dependencies.png"
EDGES = IMG.with_suffix(".txt")
LAYERS: tuple[tuple[str, ...], ...] = (
    ("memento",),
    ("bench",),
    ("agent", "training", "serving"),
    ("data", "tracking"),
    ("recsys",),
)
"""Packages by layer, top to bottom (an arrow should point down; one pointing up is red)."""
PLACE = {"data": (0.14, 0.25), "tracking": (0.86, 0.25), "agent": (0.2, 0.5)}
"""Hand-placed boxes (x, y), so that no long arrow runs through a box."""


def _scanner() -> object:
    spec = importlib.util.spec_from_file_location(
        "import_boundaries", ROOT / "tests" / "test_import_boundaries.py"
    )
    assert spec and spec.loader, "tests/test_import_boundaries.py not found"
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def package_edges() -> Counter[tuple[str, str]]:
    """(importing package, imported package) -> import lines, over every module."""
    scan = _scanner()
    packages = {p for layer in LAYERS for p in layer}
    lines: set[tuple[str, int, str, str]] = set()
    for imp in scan.all_imports():  # type: ignore[attr-defined]
        src, dst = imp.file.split("/")[0], imp.target.split(".")[0]
        if not imp.type_only and dst in packages and dst != src:
            lines.add((imp.file, imp.line, src, dst))
    return Counter((src, dst) for _, _, src, dst in lines)


def draw(edges: Counter[tuple[str, str]], out: Path) -> None:
    """A layered picture: boxes per package, arrows labelled with import counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(LAYERS):
        for col, pkg in enumerate(layer):
            pos[pkg] = ((col + 1) / (len(layer) + 1), 1.0 - row / (len(LAYERS) - 1))
    pos.update(PLACE)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    for (src, dst), n in sorted(edges.items()):
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        upward = y1 > y0
        ax.annotate(
            "",
            xy=(x1, y1 + (0.04 if not upward else -0.04)),
            xytext=(x0, y0 + (-0.04 if not upward else 0.04)),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "crimson" if upward else "0.45",
                "lw": 0.6 + min(n, 60) / 30,
                "shrinkA": 8,
                "shrinkB": 8,
                "connectionstyle": "arc3,rad=0.08",
            },
        )
        ax.text(
            0.55 * x0 + 0.45 * x1,
            0.55 * y0 + 0.45 * y1,
            str(n),
            fontsize=7,
            color="0.25",
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    for pkg, (x, y) in pos.items():
        color = "#fde2c8" if pkg == "bench" else "#d7e8f7"
        ax.text(
            x,
            y,
            pkg,
            ha="center",
            va="center",
            fontsize=11,
            bbox={"boxstyle": "round,pad=0.45", "fc": color, "ec": "0.3"},
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.12, 1.12)
    ax.axis("off")
    ax.set_title("Package imports (arrow: importer -> imported; label: import lines)", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def edge_text(edges: Counter[tuple[str, str]]) -> str:
    """The edge list as stable text (one `src -> dst  n` line per edge)."""
    return "".join(f"{s} -> {d}  {n}\n" for (s, d), n in sorted(edges.items()))


def _arrows(text: str) -> set[str]:
    return {line.rsplit("  ", 1)[0] for line in text.splitlines() if line.strip()}


def main(argv: list[str] | None = None) -> int:
    """Write the picture and its edge list, or with --check exit 1 when an arrow was added or
    removed since it was drawn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the picture is stale")
    args = parser.parse_args(argv)
    edges = package_edges()
    text = edge_text(edges)
    if args.check:  # the arrows, not their counts: a new import line does not stale the picture
        old = EDGES.read_text() if EDGES.is_file() else ""
        if _arrows(old) != _arrows(text):
            print("docs/img/dependencies.png is stale: run scripts/dependency_graph.py")
            return 1
        return 0
    draw(edges, IMG)
    EDGES.write_text(text)
    print(f"wrote {IMG.relative_to(ROOT)} ({len(edges)} package edges)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
