"""Item 3: how the InboundManager scales with the number of connected peers.

    .venv/bin/python -m bench.inbound_scale [--rounds 5] [--streams 1000]

1. Register + unregister cost per operation with 100, 1,000 and 10,000 peers
   registered, in process, no network: a random registered peer is
   unregistered and registered again (so inserts and deletes land anywhere in
   the ID-sorted membership), with and without an ``on_config_change``
   callback (which receives the new configuration, so it must be built), and
   with ``inbound_config()`` read after every change. Sizes are interleaved
   over rounds; medians are reported.
2. Memory per known node and per registered peer (tracemalloc), for the
   bookkeeping alone and through ``handle_stream`` (which also creates the
   peer's ``StreamEndpoint``).
3. The time for ``--streams`` real NodeStreams (default 1,000) to connect and
   appear in ``inbound_config()`` of a server in another process, each stream
   claiming its own address (127.0.0.1, distinct ports that need not listen):
   once over one shared HTTP/2 connection (grpc shares a subchannel among
   channels to one target) and once with one TCP connection per peer; then the
   time for all of them to leave again.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from grpc import aio

from bench._common import (
    Child,
    add_nice_option,
    announce,
    apply_nice,
    machine,
    median,
    print_table,
    spawn,
    stop_all,
    until_stdin_closes,
)
from gorums_mw import Configuration, InboundManager, InboundNodeOption, with_nodes
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._wire import NODE_STREAM_PATH

SIZES: Final = (100, 1_000, 10_000)
BASE_PORT: Final = 20_000
GORUMS_ADDR: Final = "gorums-addr"


def peer_addr(node_id: int) -> str:
    """The claimed address of peer ``node_id``: 127.0.0.1, a distinct port."""
    return f"127.0.0.1:{BASE_PORT + node_id}"


def known(peers: int, server_addr: str = "127.0.0.1:1") -> InboundNodeOption:
    """Node 1 (the server) and peers 2..peers+1."""
    nodes = {1: server_addr}
    nodes.update({node_id: peer_addr(node_id) for node_id in range(2, peers + 2)})
    return with_nodes(nodes)


class FakeStream:
    """A stream that is never used: registration only needs a handle."""

    closed = False

    def close(self) -> None:
        pass

    def request(self, *args: Any, **kwargs: Any) -> int:
        raise NotImplementedError

    def withdraw(self, ticket: int) -> bool:
        return False

    def forget(self, ticket: int) -> None:
        raise NotImplementedError

    def cast(self, method: str, payload: bytes, entries: Any = ()) -> bool:
        raise NotImplementedError


class FakeContext:
    """What ``handle_stream`` reads from a grpc context: peer() and metadata."""

    __slots__ = ("_metadata", "_peer")

    def __init__(self, node_id: int) -> None:
        self._peer = f"ipv4:127.0.0.1:{40_000 + node_id % 20_000}"
        self._metadata = ((GORUMS_ADDR, peer_addr(node_id)),)

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


# ---- 1. register + unregister cost ------------------------------------------------


MODES: Final = ("no callback", "on_config_change", "read config each change")


def churn_cost(peers: int, mode: str, ops: int, seed: int) -> float:
    """Seconds per unregister + register of a random peer, ``peers`` registered."""
    callback: Callable[[Configuration], None] | None = None
    if mode == "on_config_change":
        callback = _use
    manager = InboundManager(1, known(peers), on_config_change=callback)
    stream = FakeStream()
    cleanups = {
        node_id: manager.register_peer(node_id, peer_addr(node_id), stream, object())
        for node_id in range(2, peers + 2)
    }
    manager.inbound_config()
    rng = random.Random(seed)
    order = [rng.randrange(2, peers + 2) for _ in range(ops)]
    contexts = [object() for _ in range(ops)]
    read = mode == "read config each change"
    gc.collect()
    start = time.perf_counter()
    for node_id, context in zip(order, contexts, strict=True):
        cleanups[node_id]()
        if read:
            manager.inbound_config()
        cleanups[node_id] = manager.register_peer(node_id, peer_addr(node_id), stream, context)
        if read:
            manager.inbound_config()
    return (time.perf_counter() - start) / ops


def _use(config: Configuration) -> None:
    len(config)


def churn(rounds: int) -> None:
    ops = 2_000
    results: dict[tuple[int, str], list[float]] = {}
    for index in range(rounds):
        sizes = SIZES if index % 2 == 0 else tuple(reversed(SIZES))
        for mode in MODES:
            for peers in sizes:
                cost = churn_cost(peers, mode, ops, seed=index)
                results.setdefault((peers, mode), []).append(cost)
    rows: list[list[object]] = []
    for mode in MODES:
        base = median(results[(SIZES[0], mode)])
        for peers in SIZES:
            cost = median(results[(peers, mode)])
            rows.append([mode, f"{peers:,}", cost * 1e6, cost / base])
    print_table(
        "Register + unregister of one peer (in process, median of rounds)",
        ["mode", "registered peers", "µs per register+unregister", f"x {SIZES[0]} peers"],
        rows,
    )


# ---- 2. memory ------------------------------------------------------------------------


def memory(peers: int = 10_000) -> None:
    rows: list[list[object]] = []
    nodes_map = {1: "127.0.0.1:1"}
    nodes_map.update({node_id: peer_addr(node_id) for node_id in range(2, peers + 2)})

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    option = with_nodes(nodes_map)
    manager = InboundManager(1, option)
    after = tracemalloc.take_snapshot()
    rows.append(["known node (with_nodes + InboundManager)", _per(after, before, peers + 1)])

    stream = FakeStream()
    contexts = [object() for _ in range(peers)]
    gc.collect()
    before = tracemalloc.take_snapshot()
    cleanups = [
        manager.register_peer(node_id, peer_addr(node_id), stream, contexts[node_id - 2])
        for node_id in range(2, peers + 2)
    ]
    manager.inbound_config()
    after = tracemalloc.take_snapshot()
    rows.append(["registered peer, bookkeeping (register_peer)", _per(after, before, peers)])
    for cleanup in cleanups:
        cleanup()

    fakes = [FakeContext(node_id) for node_id in range(2, peers + 2)]
    gc.collect()
    before = tracemalloc.take_snapshot()
    handled = [manager.handle_stream(context) for context in fakes]
    manager.inbound_config()
    after = tracemalloc.take_snapshot()
    rows.append(
        ["registered peer via handle_stream (+ its StreamEndpoint)", _per(after, before, peers)]
    )
    tracemalloc.stop()
    del handled
    print_table(
        f"Memory (tracemalloc, {peers:,} nodes)",
        ["what", "bytes each"],
        rows,
    )


def _per(after: tracemalloc.Snapshot, before: tracemalloc.Snapshot, count: int) -> float:
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / count


# ---- 3. real streams --------------------------------------------------------------


async def serve(streams: int) -> None:
    from gorums_mw import add_node_stream_service
    from gorums_mw.interceptors import PeerIdentityInterceptor
    from gorums_mw.testing import free_ports

    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    manager = InboundManager(1, known(streams, address))
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    add_node_stream_service(manager, server)
    server.add_insecure_port(address)
    await server.start()
    announce({"address": address})

    async def report() -> None:
        while True:
            await manager.wait_for_config(lambda c: len(c) == streams)
            print("FULL", time.monotonic(), flush=True)
            await manager.wait_for_config(lambda c: len(c) == 0)
            print("EMPTY", time.monotonic(), flush=True)

    task = asyncio.create_task(report())
    await until_stdin_closes()
    task.cancel()
    await server.stop(None)


@dataclass
class Dialed:
    channels: list[aio.Channel]
    calls: list[Any]

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        await asyncio.gather(*(channel.close(None) for channel in self.channels))


def dial(target: str, streams: int, own_connection: bool) -> Dialed:
    """Open one NodeStream per peer, each claiming its own address."""
    options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else []
    shared = None if own_connection else aio.insecure_channel(target)
    channels: list[aio.Channel] = [] if shared is None else [shared]
    calls = []
    for node_id in range(2, streams + 2):
        channel = shared
        if channel is None:
            channel = aio.insecure_channel(target, options=options)
            channels.append(channel)
        open_stream = channel.stream_stream(
            NODE_STREAM_PATH,
            request_serializer=Message.SerializeToString,
            response_deserializer=Message.FromString,
        )
        calls.append(open_stream(None, metadata=((GORUMS_ADDR, peer_addr(node_id)),)))
    return Dialed(channels, calls)


async def connect_time(streams: int, rounds: int) -> None:
    child = spawn("server", "bench.inbound_scale", "--serve", "--streams", str(streams))
    rows: list[list[object]] = []
    try:
        target = child.info["address"]
        results: dict[str, list[tuple[float, float, float]]] = {}
        for index in range(rounds):
            modes = (False, True) if index % 2 == 0 else (True, False)
            for own in modes:
                label = "one TCP connection per peer" if own else "one shared connection"
                results.setdefault(label, []).append(await _one_trial(child, target, streams, own))
        for label, trials in results.items():
            rows.append(
                [
                    label,
                    f"{streams:,}",
                    median([t[0] for t in trials]) * 1e3,
                    median([t[0] for t in trials]) / streams * 1e6,
                    median([t[1] for t in trials]) / streams * 1e6,
                    median([t[2] for t in trials]) * 1e3,
                ]
            )
    finally:
        await stop_all([child])
    print_table(
        f"Real NodeStreams connecting to a server in another process (median of {rounds})",
        [
            "streams",
            "count",
            "ms until all in inbound_config()",
            "µs per stream",
            "server CPU µs per stream",
            "ms until all gone after close",
        ],
        rows,
    )


async def _one_trial(
    child: Child, target: str, streams: int, own_connection: bool
) -> tuple[float, float, float]:
    def read_line() -> Awaitable[str]:
        return asyncio.to_thread(_readline, child)

    cpu0 = child.cpu()
    start = time.monotonic()
    dialed = dial(target, streams, own_connection)
    full = await asyncio.wait_for(read_line(), 120)
    cpu1 = child.cpu()
    closing = time.monotonic()
    await dialed.close()
    empty = await asyncio.wait_for(read_line(), 120)
    full_at = float(full.split()[1])
    empty_at = float(empty.split()[1])
    return full_at - start, (cpu1 - cpu0), empty_at - closing


def _readline(child: Child) -> str:
    assert child.proc.stdout is not None
    return child.proc.stdout.readline()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument(
        "--only", choices=("churn", "memory", "streams"), nargs="*", default=[], help="parts to run"
    )
    add_nice_option(parser)
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    if args.serve:
        asyncio.run(serve(args.streams))
        return
    print(machine())
    parts = args.only or ["churn", "memory", "streams"]
    if "churn" in parts:
        churn(args.rounds)
    if "memory" in parts:
        memory()
    if "streams" in parts:
        asyncio.run(connect_time(args.streams, max(1, args.rounds // 2)))


if __name__ == "__main__":
    main()
