"""This tree against an earlier release, without an SDK: has the plain path got slower?

    .venv/bin/python -m bench.versus [--base 2b6e614] [--rounds 7] [--seconds 0.8]

``--base`` is a git revision (default: 0.1.0, commit 2b6e614), checked out
in a temporary worktree (removed afterwards). Each measurement is a fresh
process running ``bench/_versus_child.py`` with ``PYTHONPATH`` set to one
tree: three ``LocalReplicas`` in that process, majority quorum calls with 1
and 64 in flight, and unary calls identified by ``gorums-addr`` (64 in
flight). Rows: the base release; this tree on the plain NodeStream
(``batching=False``, the wire 0.1.0 speaks); this tree as it comes
(batched). A base later than 0.1.0 also gets its own plain row. Rounds
rotate the rows; ratios are against the base in the same round (median,
min-max over rounds). Everything shares one process and two
cores, so only the ratios mean much.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench._common import ROOT, machine, median, print_table, python_in, spread, worktree

CHILD: Final = ROOT / "bench" / "_versus_child.py"
RELEASE_0_1_0: Final = "2b6e614"
WHATS: Final = ("quorum x1", "quorum x64", "identified x64")


def run_child(tree: Path, variant: str, seconds: float) -> dict[str, float]:
    """One measurement in a fresh process on ``tree``'s code."""
    out = subprocess.run(
        [*python_in(None if tree == ROOT else tree), str(CHILD), variant, str(seconds)],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "GRPC_VERBOSITY": "ERROR", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"measurement on {tree} failed:\n{out.stderr[-3000:]}")
    found: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def compare(base: Path, label: str, rounds: int, seconds: float) -> None:
    rows: tuple[tuple[str, Path, str], ...] = (
        (label, base, "default"),
        ("this tree, plain", ROOT, "plain"),
        ("this tree", ROOT, "default"),
    )
    if label != "0.1.0":  # later releases batch by default: their plain stream too
        rows = (rows[0], (f"{label}, plain", base, "plain"), *rows[1:])
    ratios: dict[tuple[str, str], list[float]] = {}
    rates: dict[tuple[str, str], list[float]] = {}
    for index in range(rounds):
        order = rows[index % len(rows) :] + rows[: index % len(rows)]
        found = {name: run_child(tree, variant, seconds) for name, tree, variant in order}
        for name, values in found.items():
            for what in WHATS:
                ratios.setdefault((name, what), []).append(values[what] / found[label][what])
                rates.setdefault((name, what), []).append(values[what])
        print(f"round {index + 1}/{rounds} done", file=sys.stderr, flush=True)

    def cell(name: str, what: str) -> str:
        spread_text = spread(ratios[(name, what)])
        rate = median(rates[(name, what)])
        return f"{median(ratios[(name, what)]):.2f} ({spread_text}; {rate:.0f}/s)"

    print_table(
        f"No SDK, ratio to {label} (median, min-max of {rounds} rounds; calls/s); {machine()}",
        ["code", *WHATS],
        [[name, *(cell(name, what) for what in WHATS)] for name, _, _ in rows],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base", default=RELEASE_0_1_0, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.8)
    args = parser.parse_args(argv)
    with worktree(args.base) as base:
        label = "0.1.0" if args.base == RELEASE_0_1_0 else args.base
        compare(base, label, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
