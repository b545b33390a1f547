"""Charts of the quorum-call benchmarks for the documentation site, drawn from saved output.

    .venv/bin/python -m bench.charts [SOURCE.md ...] [--out docs/img]

Reads the Markdown tables the benchmarks print (by default the results
pasted into ``BENCHMARKS.md``; or files holding the output of
``python -m bench.quorum`` and ``python -m bench.interop``) and writes:

- ``quorum.svg``: calls/s at 64 in flight and p50 latency at 1 in flight of
  majority quorum calls, for 3 and 5 replicas: the hand-written quorum
  (``plain``), gorums-mw on the plain and the batched stream, calling back
  over inbound streams, and stock Go Gorums (section 2 of BENCHMARKS.md);
- ``interop.svg``: the same two measures for every pairing of Go Gorums and
  gorums-mw clients and servers, and the bare grpc.aio pattern (section 3).

A table is found by its header, so the tables may come in any order and
from any of the files. The SVG output is byte-for-byte stable for the same
input and matplotlib version (no date, fixed IDs), so it can be committed.
Needs matplotlib (the ``docs`` extra).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parent.parent
Row = dict[str, str]

QUORUM_COLUMNS = ("replicas", "in flight", "variant", "calls/s", "p50 ms")
INTEROP_COLUMNS = ("client -> servers", "p50 ms @1", "calls/s @64")
QUORUM_VARIANTS = {
    "plain": "by hand (grpc.aio unary calls)",
    "unbatched": "gorums-mw, plain stream",
    "batched": "gorums-mw, batched",
    "inbound": "gorums-mw, calling back",
    "Go": "Go Gorums",
}
COLORS = ["#9e9e9e", "#64b5f6", "#1565c0", "#26a69a", "#ef6c00", "#8d6e63", "#ab47bc"]


def tables(text: str) -> list[list[Row]]:
    """Every Markdown table in ``text``, as rows keyed by the header's cells."""
    found: list[list[Row]] = []
    lines = [line.strip() for line in text.splitlines()]
    index = 0
    while index + 1 < len(lines):
        header, rule = lines[index], lines[index + 1]
        if header.startswith("|") and rule.startswith("|") and set(rule) <= set("|-: "):
            names = _cells(header)
            rows: list[Row] = []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                rows.append(dict(zip(names, _cells(lines[index]), strict=False)))
                index += 1
            found.append(rows)
        else:
            index += 1
    return found


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def number(cell: str) -> float:
    """A table's number: ``12,545`` is 12545."""
    return float(cell.replace(",", ""))


def find(all_tables: Sequence[list[Row]], columns: Sequence[str]) -> list[Row]:
    """The last table whose header has ``columns`` (the newest, when files are given in order)."""
    matching = [rows for rows in all_tables if rows and all(c in rows[0] for c in columns)]
    if not matching:
        raise LookupError(f"no table with the columns {', '.join(columns)}")
    return matching[-1]


def quorum_chart(rows: Sequence[Row], out: Path) -> None:
    """Grouped bars by replica count: calls/s at 64 in flight, p50 at 1 in flight."""
    sizes = sorted({row["replicas"] for row in rows}, key=int)
    variants = [v for v in QUORUM_VARIANTS if any(row["variant"] == v for row in rows)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for axes, in_flight, column, title in (
        (left, "64", "calls/s", "quorum calls/s, 64 in flight (higher is better)"),
        (right, "1", "p50 ms", "p50 latency in ms, 1 in flight (lower is better)"),
    ):
        values = {
            (row["replicas"], row["variant"]): number(row[column])
            for row in rows
            if row["in flight"] == in_flight
        }
        _bars(axes, sizes, variants, values, [f"{size} replicas" for size in sizes])
        axes.set_title(title, fontsize=10)
    figure.legend(
        [QUORUM_VARIANTS[v] for v in variants],
        loc="lower center",
        ncol=len(variants),
        fontsize=8,
        frameon=False,
    )
    figure.suptitle("Majority quorum calls, one coordinator and replica processes on loopback")
    _save(figure, out)


def interop_chart(rows: Sequence[Row], out: Path) -> None:
    """One bar per client -> servers pairing: calls/s at 64 in flight, p50 at 1 in flight."""
    pairings = [row["client -> servers"] for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for axes, column, title in (
        (left, "calls/s @64", "calls/s, 64 in flight (higher is better)"),
        (right, "p50 ms @1", "p50 ms, 1 in flight (lower is better)"),
    ):
        values = [number(row[column]) for row in rows]
        positions = range(len(pairings))
        axes.barh(list(positions), values, color=[COLORS[i % len(COLORS)] for i in positions])
        axes.set_yticks(list(positions), pairings, fontsize=8)
        axes.invert_yaxis()
        axes.set_title(title, fontsize=10)
        for position, value in zip(positions, values, strict=True):
            axes.annotate(
                f"{value:,.0f}" if value >= 100 else f"{value:g}",
                (value, position),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
        axes.margins(x=0.18)
    figure.suptitle("Go Gorums and gorums-mw, every pairing: 3 servers and a client, loopback")
    _save(figure, out, bottom=0.0)


def _bars(
    axes: Axes,
    groups: Sequence[str],
    series: Sequence[str],
    values: dict[tuple[str, str], float],
    labels: Sequence[str],
) -> None:
    width = 0.8 / len(series)
    for number_, name in enumerate(series):
        xs = [g + (number_ - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [values.get((group, name), 0.0) for group in groups]
        bars = axes.bar(xs, heights, width, color=COLORS[number_ % len(COLORS)])
        axes.bar_label(
            bars, labels=[f"{h:,.0f}" if h >= 100 else f"{h:g}" for h in heights], fontsize=6
        )
    axes.set_xticks(range(len(groups)), labels)
    axes.margins(y=0.12)


def _save(figure: Figure, out: Path, bottom: float = 0.07) -> None:
    """Write ``figure`` as SVG, leaving ``bottom`` of its height for a legend."""
    figure.tight_layout(rect=(0, bottom, 1, 0.95))
    figure.savefig(out, format="svg", metadata={"Date": None})
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="*", type=Path, default=[ROOT / "BENCHMARKS.md"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    plt.rcParams.update({"svg.hashsalt": "gorums-mw", "svg.fonttype": "none"})
    found = [t for source in args.sources for t in tables(source.read_text(encoding="utf-8"))]
    args.out.mkdir(parents=True, exist_ok=True)
    quorum_chart(find(found, QUORUM_COLUMNS), args.out / "quorum.svg")
    interop_chart(find(found, INTEROP_COLUMNS), args.out / "interop.svg")
    for name in ("quorum.svg", "interop.svg"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
