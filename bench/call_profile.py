"""Python function calls per quorum call on the coordinator, by cProfile: this tree and another.

    .venv/bin/python -m bench.call_profile [--calls 3000] [--in-flight 1,64] [--base REVISION]
        [--top 12]

Three gorums-mw servers of upstream's Storage (``bench.interop --serve
gorums``, from this tree) and a client of the same tree (and, with
``--base``, one of that revision, from a temporary checkout) making
``WriteQC`` majority quorum calls over batched streams, as ``bench.interop``'s
``gorums-mw -> gorums-mw`` row. After 200 warm-up calls the client runs
``--calls`` more under cProfile, at each number in flight, and prints the
Python function calls per quorum call (counts are exact and do not move with
the machine's load), then the functions with the most own time per quorum
call, with their calls per quorum call (cProfile's time, inflated by its own
overhead: compare within one table).

The client part runs with the code of the tree measured, so it imports only
``gorums_mw`` and the interop tests' Storage messages.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
from collections.abc import Sequence
from pathlib import Path
from typing import Final

WARMUP_CALLS: Final = 200
VALUE: Final = "x" * 16
"""The value each WriteQC writes, as in ``bench.interop``."""
THIS_FILE: Final = Path(__file__).resolve()


async def _client(addrs: Sequence[str], calls: int, in_flight: int, out: Path) -> None:
    """Client side (runs with the measured tree's ``gorums_mw``): profile ``calls``
    quorum calls, ``in_flight`` at a time, into ``out``; print ``RESULT <calls>``."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from gorums_mw import OutboundManager, with_nodes
    from tests.interop.storage import WRITE_QC, WriteRequest, WriteResponse

    dialer = OutboundManager(with_nodes({i: a for i, a in enumerate(addrs, start=1)}))
    await dialer.start()
    try:
        await dialer.wait_connected(timeout=10)
        config = dialer.config()

        async def worker(count: int) -> None:
            for _ in range(count):
                now = Timestamp()
                now.GetCurrentTime()
                request = WriteRequest(key="b", value=VALUE, time=now)
                await config.quorum_call(WRITE_QC, request, WriteResponse, timeout=5)

        await worker(WARMUP_CALLS)
        profiler = cProfile.Profile()
        profiler.enable()
        await asyncio.gather(*(worker(calls // in_flight) for _ in range(in_flight)))
        profiler.disable()
        profiler.dump_stats(out)
    finally:
        await dialer.stop()
    print("RESULT", calls // in_flight * in_flight, flush=True)


def _profile(stats_file: Path, calls: int, top: int) -> tuple[float, list[list[object]]]:
    """Function calls per quorum call, and the ``top`` functions by own time."""
    stats = pstats.Stats(str(stats_file))
    entries = stats.stats  # type: ignore[attr-defined]  # not in typeshed
    rows = []
    for (file, line, name), (_, ncalls, tottime, _, _) in entries.items():
        where = f"{Path(file).name}:{line}({name})" if line else name
        rows.append([where, ncalls / calls, tottime / calls * 1e6])
    total = sum(float(row[1]) for row in rows)
    rows.sort(key=lambda row: -float(row[2]))
    return total, rows[:top]


def _drive(calls: int, loads: Sequence[int], base: str | None, top: int) -> None:
    # Imported here, not at the top: the client part of this file runs with
    # another tree's code on its path, where these may differ or be missing.
    import contextlib
    import os
    import subprocess
    import tempfile

    from bench._common import (
        ROOT,
        machine,
        print_table,
        python_in,
        spawn,
        worktree,
    )
    from gorums_mw.testing import free_ports

    addrs = [f"127.0.0.1:{port}" for port in free_ports(3)]
    servers = [
        spawn(f"gorums {i}", "bench.interop", "--serve", "gorums", "--id", str(i), "--addrs", a)
        for i, a in enumerate(addrs, start=1)
    ]
    totals: list[list[object]] = []
    tops: list[tuple[str, int, list[list[object]]]] = []
    try:
        with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as folder:
            trees: list[tuple[str, Path | None]] = [("this tree", None)]
            if base is not None:
                trees.append((base, stack.enter_context(worktree(base))))
            for label, tree in trees:
                line: list[object] = [label]
                for in_flight in loads:
                    out = Path(folder) / f"{len(totals)}-{in_flight}.prof"
                    code = ROOT if tree is None else tree
                    client = ["--client", ",".join(addrs), "--calls", str(calls)]
                    client += ["--in-flight", str(in_flight), "--out", str(out)]
                    done = subprocess.run(
                        [*python_in(tree), str(THIS_FILE), *client],
                        capture_output=True,
                        text=True,
                        timeout=300,
                        check=True,
                        cwd=code,
                        env={**os.environ, "GRPC_VERBOSITY": "ERROR", "PYTHONPATH": str(code)},
                    )
                    made = int(done.stdout.split("RESULT")[1].split()[0])
                    total, busiest = _profile(out, made, top)
                    line.append(total)
                    tops.append((label, in_flight, busiest))
                totals.append(line)
    finally:
        for server in servers:
            server.stop()
    print(machine())
    print_table(
        f"Coordinator: Python function calls per quorum call (cProfile, {calls} calls,"
        " 3 servers, batched)",
        ["code", *(f"{n} in flight" for n in loads)],
        totals,
    )
    for label, in_flight, busiest in tops:
        print_table(
            f"{label}, {in_flight} in flight: the {top} functions with the most own time",
            ["function", "calls per quorum call", "own µs per quorum call (cProfile)"],
            busiest,
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--in-flight", default="1,64", help="comma-separated calls in flight")
    parser.add_argument("--base", help="also profile the client of this git revision")
    parser.add_argument("--top", type=int, default=12, help="functions listed per table")
    args = parser.parse_args(argv)
    loads = [int(n) for n in args.in_flight.split(",") if n.strip()]
    if args.client:
        asyncio.run(_client(args.client.split(","), args.calls, loads[0], args.out))
    else:
        _drive(args.calls, loads, args.base, args.top)


if __name__ == "__main__":
    main()
