"""The identity interceptor's cost in CPU instructions: repeatable on a loaded machine.

    .venv/bin/python -m bench.instructions [--calls 2000] [--base REVISION]

Wall-clock ratios on a shared 2-core machine swing by 10% from run to run;
instruction counts do not. Each server variant of ``bench.interceptor``
runs under valgrind's callgrind with instrumentation off; after a warm-up,
callgrind counts the server process's instructions (every thread: grpc's
C core and Python) while this process makes ``--calls`` unary calls, and
the table gives instructions per call and their ratio to the bare server.
Each server also runs under cProfile (the difference between serving
``2 * --calls`` and ``--calls`` calls): its Python function calls per call,
exact, and what they add over the bare server.
A server that is CPU-bound runs at about the inverse ratio. ``--base`` adds
the ``gorums`` rows for an earlier revision (a temporary checkout). Needs
valgrind (Debian's package); each row takes about 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from grpc import aio

from bench._common import (
    PAYLOAD,
    machine,
    print_table,
    say_stub,
    spawn,
    worktree,
)
from bench.interceptor import CLIENT_CLAIM

WARMUP: Final = 200
SERVE: Final = ("bench.interceptor", "--serve")
"""The module and option that start a ``bench.interceptor`` server of a kind."""
ROWS: Final = (
    ("bare", False),
    ("bare", True),
    ("noop", True),
    ("gorums", False),
    ("gorums", True),
)
"""(server kind, whether the client sends the claim) for each row."""


async def calls(port: int, count: int, claim: bool) -> None:
    """``count`` unary calls, 16 in flight."""
    metadata = (("gorums-addr", CLIENT_CLAIM),) if claim else ()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = say_stub(channel, metadata)
        limit = asyncio.Semaphore(16)

        async def one() -> None:
            async with limit:
                await call(PAYLOAD)

        await asyncio.gather(*(one() for _ in range(count)))


def callgrind(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def measure(kind: str, claim: bool, count: int, tree: Path | None) -> float:
    """Instructions per call of a ``kind`` server (from ``tree``) under callgrind."""
    with tempfile.TemporaryDirectory(prefix="gorums-callgrind-") as folder:
        out = Path(folder)
        valgrind = ["valgrind", "-q", "--tool=callgrind", "--instr-atstart=no"]
        valgrind.append(f"--callgrind-out-file={out}/cg.%p")
        server = spawn(kind, *SERVE, kind, tree=tree, wrapper=valgrind)
        try:
            port = server.info["port"]
            asyncio.run(calls(port, WARMUP, claim))
            callgrind("-i", "on", str(server.proc.pid))
            asyncio.run(calls(port, count, claim))
            callgrind("-i", "off", str(server.proc.pid))
            callgrind("-d", str(server.proc.pid))
        finally:
            server.stop()
        total = 0
        for dump in out.glob("cg.*"):
            for text in dump.read_text().splitlines():
                if text.startswith("totals:"):
                    total += int(text.split()[1])
        return total / count


def python_calls(kind: str, claim: bool, count: int, tree: Path | None) -> float:
    """Python function calls per call of a ``kind`` server (from ``tree``), by cProfile:
    the difference between a server that served ``2 * count`` calls and one that served
    ``count`` (start-up and warm-up cancel out)."""

    def served(calls_made: int) -> int:
        with tempfile.TemporaryDirectory(prefix="gorums-cprofile-") as folder:
            stats = Path(folder) / "server.prof"
            server = spawn(kind, "cProfile", "-o", str(stats), "-m", *SERVE, kind, tree=tree)
            try:
                asyncio.run(calls(server.info["port"], WARMUP + calls_made, claim))
            finally:
                server.stop()  # the server returns; cProfile writes its stats
            return int(pstats.Stats(str(stats)).total_calls)  # type: ignore[attr-defined]

    return (served(2 * count) - served(count)) / count


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--base", help="also measure the gorums rows of this git revision")
    args = parser.parse_args(argv)
    rows: list[tuple[str, str, bool, float, float]] = []
    for kind, claim in ROWS:
        rows.append(
            (
                "this tree",
                kind,
                claim,
                measure(kind, claim, args.calls, None),
                python_calls(kind, claim, args.calls, None),
            )
        )
        print(f"{kind} claim={claim} done", file=sys.stderr, flush=True)
    if args.base:
        with worktree(args.base) as base:
            for claim in (False, True):
                rows.append(
                    (
                        args.base,
                        "gorums",
                        claim,
                        measure("gorums", claim, args.calls, base),
                        python_calls("gorums", claim, args.calls, base),
                    )
                )
    bare = {claim: cost for _, kind, claim, cost, _ in rows if kind == "bare"}
    bare_calls = {claim: count for _, kind, claim, _, count in rows if kind == "bare"}
    print(machine())
    print_table(
        f"Server instructions per unary call (callgrind, {args.calls} calls, 16 in flight)",
        [
            "code",
            "server",
            "client sends gorums-addr",
            "instructions/call",
            "x bare",
            "x bare, same request",
            "Python calls/call (cProfile)",
            "Python calls over bare, same request",
        ],
        [
            [
                code,
                kind,
                "yes" if claim else "no",
                cost,
                bare[False] / cost,
                bare[claim] / cost,
                count,
                count - bare_calls[claim],
            ]
            for code, kind, claim, cost, count in rows
        ],
    )


if __name__ == "__main__":
    main()
