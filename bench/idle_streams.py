"""What an idle client-peer stream costs a server, and what the stream caps refuse.

    .venv/bin/python -m bench.idle_streams [--streams 10000] [--channels 20]

A server process (a one-node ``System``, limits raised so nothing is
refused) and this process as the client: it opens ``--streams`` NodeStreams
announced as client peers (``gorums-client``), spread over ``--channels``
connections, waits until the server has registered them all, and reads the
server's resident set (``/proc``) before and after. Reported: bytes per idle
stream, on the server; then the same flood against the default ``Limits``,
counting the streams refused with ``RESOURCE_EXHAUSTED``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from bench._common import Child, announce, machine, print_table, spawn
from gorums_mw import GORUMS_CLIENT_KEY, Limits, System, with_nodes

NODE_STREAM = "/stream.Gorums/NodeStream"
MiB = 1 << 20
WAVE = 500
"""Streams opened at once: below grpc's own backlog of new calls (about 1,000)."""


def _rss() -> int:
    """This process's resident set, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def serve(unlimited: bool) -> None:
    from gorums_mw.testing import free_ports

    (port,) = free_ports(1)
    limits = Limits(max_client_peers=1_000_000, max_streams=1_000_000) if unlimited else None
    system = System(1, with_nodes({1: f"127.0.0.1:{port}"}), limits=limits)
    async with system:
        announce({"address": system.address})
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "state?":
                print(f"{len(system.manager.client_config())} {_rss()}", flush=True)


async def _ask(child: Child) -> tuple[int, int]:
    """(client peers registered, resident bytes) of the server."""
    assert child.proc.stdin is not None and child.proc.stdout is not None
    child.proc.stdin.write("state?\n")
    child.proc.stdin.flush()
    line = await asyncio.to_thread(child.proc.stdout.readline)
    clients, rss = line.split()
    return int(clients), int(rss)


async def flood(
    child: Child, streams: int, channels: int, expected: int
) -> tuple[list[Any], list[aio.Channel]]:
    """Open ``streams`` client-peer streams over ``channels`` connections, in waves
    of ``WAVE`` (grpc cancels new streams beyond its own backlog of calls not yet
    served), until the server has ``expected`` client peers."""
    opened = [aio.insecure_channel(child.info["address"]) for _ in range(channels)]
    calls: list[Any] = []
    while len(calls) < streams:
        wave = min(WAVE, streams - len(calls))
        calls += [
            opened[i % channels].stream_stream(NODE_STREAM)(  # type: ignore[call-arg]
                metadata=((GORUMS_CLIENT_KEY, "1"),)
            )
            for i in range(wave)
        ]
        await until(child, min(len(calls), expected), timeout=30)
    return calls, opened


async def refused(calls: Sequence[Any]) -> int:
    """How many of ``calls`` ended ``RESOURCE_EXHAUSTED`` (the others are left open)."""
    count = 0
    for call in calls:
        if call.done() and await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            count += 1
    return count


async def until(child: Child, clients: int, timeout: float) -> tuple[int, int]:
    """Poll the server until ``clients`` are registered or ``timeout`` passes; its last state."""
    state = await _ask(child)
    deadline = asyncio.get_running_loop().time() + timeout
    while state[0] < clients and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        state = await _ask(child)
    return state


async def run(streams: int, channels: int) -> None:
    rows: list[list[object]] = []
    for label, args in (("raised", ["--unlimited"]), ("default Limits()", [])):
        child = spawn(label, "bench.idle_streams", "--serve", *args)
        try:
            before = (await _ask(child))[1]
            expected = streams if args else min(streams, Limits().max_client_peers)
            calls, opened = await flood(child, streams, channels, expected)
            clients, after = await _ask(child)
            await asyncio.sleep(1.0)  # refusals still on their way back
            rows.append(
                [
                    label,
                    streams,
                    clients,
                    await refused(calls),
                    (after - before) / MiB,
                    (after - before) / max(clients, 1) / 1024,
                ]
            )
            for call in calls:
                call.cancel()
            await asyncio.gather(*(channel.close(None) for channel in opened))
        finally:
            child.stop()
    print(machine())
    print_table(
        f"Idle client-peer streams on one server ({channels} connections)",
        ["limits", "opened", "registered", "refused", "server RSS growth MiB", "KiB per stream"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--unlimited", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=20)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.unlimited))
        return
    asyncio.run(run(args.streams, args.channels))


if __name__ == "__main__":
    main()
