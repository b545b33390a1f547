"""Item 2: quorum calls over NodeStream against doing it by hand with plain grpc.aio.

    .venv/bin/python -m bench.quorum [--rounds 6] [--seconds 0.6] [--thread-names]

Setup: five replica processes and this process as the coordinator (node 1),
all on loopback. Each replica runs

- a plain grpc.aio server (no interceptor) serving the unary ``Say`` echo,
- a gorums server (``PeerIdentityInterceptor`` + NodeStream + an
  ``InboundManager`` whose handlers serve ``Say``),
- an ``OutboundManager`` that dials the coordinator's gorums server as an
  identified replica and serves ``Say`` for calls the coordinator makes back.

The coordinator measures, for 3 and 5 replicas and 1 and 64 calls in flight:

- ``plain``: one ``grpc.aio`` channel per replica; per call it starts one
  unary call per replica as tasks, takes replies with ``asyncio.as_completed``
  until a majority is in, and cancels the rest (what a user writes by hand);
- ``unbatched``: ``Configuration.quorum_call`` over plain NodeStreams the
  coordinator dialed (``OutboundManager(batching=False)``);
- ``batched``: the same over BatchedNodeStreams (``OutboundManager()``);
- ``inbound``: ``Configuration.quorum_call`` over ``inbound_config()``: the
  server calls back to the replicas over the (batched) streams they opened.

The batched rows also give the mean batch size: NodeStream messages per
gRPC message the coordinator wrote. When the Go peer is there
(``GORUMS_GO_PEER``, or ``../shared/interop/go-peer/gorums-go-peer``), a
``Go`` row runs stock Go Gorums in the same rounds: five Go servers and Go's
``bench`` client (``WriteQC``, a 16-byte value, majority); its latencies are
the Go client's own, its CPU that of the client process and the servers.

Rounds alternate the variants in rotating order; throughput ratios are taken
against ``plain`` in the same round (median over rounds), latencies pooled.

A second table splits CPU per call by thread: the main (asyncio) thread of
the coordinator and of the replicas (summed) against all their other threads
(grpc's poller, timer and event-engine threads); ``--thread-names`` breaks the
latter down by thread name. Go processes are given as a total.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
from grpc import aio

from bench import interop
from bench._common import (
    PAYLOAD,
    SAY_METHOD,
    Child,
    Payload,
    ThreadCpu,
    UnaryCall,
    add_nice_option,
    announce,
    apply_nice,
    bench_handler,
    cpu_between,
    cpu_snapshot,
    machine,
    median,
    percentile,
    print_table,
    say_stub,
    spawn,
    spread,
    stop_all,
    thread_cells,
    thread_headers,
    thread_names,
    until_stdin_closes,
)
from gorums_mw import (
    Configuration,
    HandlerRegistry,
    InboundManager,
    Node,
    OutboundManager,
    add_node_stream_service,
    with_nodes,
)
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports

REPLICAS: Final = 5
COORDINATOR: Final = 1
SIZES: Final = (3, 5)
CONCURRENCY: Final = (1, 64)
VARIANTS: Final = ("plain", "unbatched", "batched", "inbound")


def _registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.add_generic_rpc_handlers((bench_handler(),))
    return registry


def _gorums_server(manager: InboundManager, address: str) -> aio.Server:
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    add_node_stream_service(manager, server)
    server.add_insecure_port(address)
    return server


# ---- replica process ----------------------------------------------------------


async def serve_replica(node_id: int, nodes: dict[int, str], plain_port: int) -> None:
    registry = _registry()
    plain = aio.server()
    plain.add_generic_rpc_handlers((bench_handler(),))
    plain.add_insecure_port(f"127.0.0.1:{plain_port}")
    manager = InboundManager(node_id, with_nodes(nodes), handlers=registry)
    gorums = _gorums_server(manager, nodes[node_id])
    await plain.start()
    await gorums.start()
    dialer = OutboundManager(
        with_nodes({COORDINATOR: nodes[COORDINATOR]}), my_addr=nodes[node_id], handlers=registry
    )
    await dialer.start()
    announce({})
    await until_stdin_closes()
    await dialer.stop()
    await gorums.stop(None)
    await plain.stop(None)


# ---- coordinator --------------------------------------------------------------


async def plain_quorum(stubs: Sequence[UnaryCall], request: Payload) -> list[Payload]:
    """A majority quorum call written by hand: tasks, as_completed, cancel the rest."""
    needed = len(stubs) // 2 + 1
    tasks = [asyncio.ensure_future(stub(request)) for stub in stubs]
    replies: list[Payload] = []
    failed = 0
    try:
        for next_done in asyncio.as_completed(tasks):
            try:
                replies.append(await next_done)
            except grpc.RpcError:
                failed += 1
                if failed > len(stubs) - needed:
                    raise
                continue
            if len(replies) >= needed:
                return replies
    finally:
        for task in tasks:
            task.cancel()
    raise RuntimeError("unreachable: every call finished without a quorum")


@dataclass
class Sample:
    rate: float
    latencies: list[float]
    coordinator: ThreadCpu  # coordinator CPU per quorum call (µs), by thread
    replicas: ThreadCpu  # CPU of all replicas per quorum call (µs), by thread
    batch: float | None = None  # NodeStream messages per gRPC message the coordinator wrote
    p50: float | None = None  # set when the client measured its own (the Go peer)
    p99: float | None = None

    @property
    def coordinator_us(self) -> float:
        return self.coordinator.total

    @property
    def replicas_us(self) -> float:
        return self.replicas.total


@dataclass
class Results:
    samples: dict[tuple[int, int, str], list[Sample]] = field(default_factory=dict)


async def load(
    call: Callable[[], Awaitable[object]],
    concurrency: int,
    replicas: Sequence[Child],
    warmup: float,
    seconds: float,
    streams: Sequence[StreamEndpoint] = (),
) -> Sample:
    latencies: list[float] = []
    recording = False
    running = True

    async def worker() -> None:
        while running:
            start = time.perf_counter()
            await call()
            if recording:
                latencies.append(time.perf_counter() - start)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    pids = [r.proc.pid for r in replicas]
    me = [os.getpid()]
    try:
        await asyncio.sleep(warmup)
        r0, c0, t0 = cpu_snapshot(pids), cpu_snapshot(me), time.perf_counter()
        w0, m0 = sum(s.writes for s in streams), sum(s.sent for s in streams)
        recording = True
        await asyncio.sleep(seconds)
        recording = False
        t1, c1, r1 = time.perf_counter(), cpu_snapshot(me), cpu_snapshot(pids)
        w1, m1 = sum(s.writes for s in streams), sum(s.sent for s in streams)
    finally:
        running = False
        await asyncio.gather(*workers)
    n = max(1, len(latencies))
    batch = (m1 - m0) / max(1, w1 - w0) if streams else None
    return Sample(
        n / (t1 - t0),
        latencies,
        cpu_between(c0, c1).per_call(n),
        cpu_between(r0, r1).per_call(n),
        batch,
    )


@dataclass
class Cluster:
    """What ``cluster`` runs: the replicas' plain grpc.aio ports, the coordinator's
    ``InboundManager`` (the replicas dial it), the replica processes, and two
    ``OutboundManager``s connected to every replica over plain and batched NodeStreams."""

    plain_ports: list[int]
    manager: InboundManager
    children: list[Child]
    unbatched: OutboundManager
    batched: OutboundManager


@contextlib.asynccontextmanager
async def cluster(replicas: int) -> AsyncIterator[Cluster]:
    """The coordinator (node 1) serving, ``replicas`` replica processes, and two dialers."""
    ports = free_ports(2 * replicas + 1)
    nodes = {COORDINATOR: f"127.0.0.1:{ports[0]}"}
    nodes.update({COORDINATOR + i: f"127.0.0.1:{ports[i]}" for i in range(1, replicas + 1)})
    plain_ports = ports[replicas + 1 :]
    replica_ids = [COORDINATOR + i for i in range(1, replicas + 1)]

    manager = InboundManager(COORDINATOR, with_nodes(nodes))
    server = _gorums_server(manager, nodes[COORDINATOR])
    await server.start()
    children: list[Child] = []
    try:
        for index, node_id in enumerate(replica_ids):
            args = ["--serve-replica", str(node_id), "--nodes", json.dumps(nodes)]
            args += ["--plain-port", str(plain_ports[index])]
            children.append(spawn(f"replica {node_id}", "bench.quorum", *args))
        peers = with_nodes({nid: nodes[nid] for nid in replica_ids})
        # Anonymous dialers (no my_addr): two streams claiming node 1 would replace
        # each other at every replica, which registers one stream per peer.
        unbatched = OutboundManager(peers, batching=False)
        batched = OutboundManager(peers, batching=True)
        for each in (unbatched, batched):
            await each.start()
            await each.wait_connected(timeout=30)
        try:
            yield Cluster(plain_ports, manager, children, unbatched, batched)
        finally:
            await unbatched.stop()
            await batched.stop()
    finally:
        await stop_all(children)
        await server.stop(None)


async def drive(rounds: int, seconds: float, show_names: bool = False) -> None:
    async with cluster(REPLICAS) as running:
        manager = running.manager
        await manager.wait_for_config(lambda c: len(c) == REPLICAS, timeout=30)
        channels = [aio.insecure_channel(f"127.0.0.1:{port}") for port in running.plain_ports]
        stubs = [say_stub(channel) for channel in channels]
        for stub in stubs:  # connect before measuring
            await stub(PAYLOAD)
        try:
            go = GoPeer.start() if GoPeer.available() else None
            try:
                results = await run_rounds(
                    rounds,
                    seconds,
                    running.unbatched,
                    running.batched,
                    manager,
                    stubs,
                    running.children,
                    go,
                )
            finally:
                if go is not None:
                    go.stop()
        finally:
            for channel in channels:
                await channel.close(None)
    report(results, show_names)


async def run_rounds(
    rounds: int,
    seconds: float,
    dialer: OutboundManager,
    batched: OutboundManager,
    manager: InboundManager,
    stubs: Sequence[UnaryCall],
    children: Sequence[Child],
    go: GoPeer | None,
) -> Results:
    results = Results()
    warmup = min(0.2, seconds / 3)
    streams: dict[str, list[StreamEndpoint]] = {}

    def endpoints(config: Configuration) -> list[StreamEndpoint]:
        return [n.channel for n in config if isinstance(n.channel, StreamEndpoint)]

    def calls(size: int) -> dict[str, Callable[[], Awaitable[object]]]:
        wanted = set(range(COORDINATOR + 1, COORDINATOR + 1 + size))
        unbatched = Configuration([n for n in dialer.config() if n.id in wanted])
        batching = Configuration([n for n in batched.config() if n.id in wanted])
        inbound = Configuration([n for n in manager.inbound_config() if n.id in wanted])
        assert len(unbatched) == len(batching) == len(inbound) == size
        assert all(_batched(n) for n in batching)
        assert not any(_batched(n) for n in unbatched)
        chosen = stubs[:size]
        streams.update(
            {
                "plain": [],
                "unbatched": endpoints(unbatched),
                "batched": endpoints(batching),
                "inbound": endpoints(inbound),
            }
        )
        return {
            "plain": lambda: plain_quorum(chosen, PAYLOAD),
            "unbatched": lambda: unbatched.quorum_call(SAY_METHOD, PAYLOAD, Payload),
            "batched": lambda: batching.quorum_call(SAY_METHOD, PAYLOAD, Payload),
            "inbound": lambda: inbound.quorum_call(SAY_METHOD, PAYLOAD, Payload),
        }

    for index in range(rounds):
        for size in SIZES:
            fns = calls(size)
            for concurrency in CONCURRENCY:
                shift = (index + size + concurrency) % len(VARIANTS)
                for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                    sample = await load(
                        fns[variant], concurrency, children, warmup, seconds, streams[variant]
                    )
                    results.samples.setdefault((size, concurrency, variant), []).append(sample)
                if go is not None:
                    sample = await asyncio.to_thread(go.measure, size, concurrency, seconds)
                    results.samples.setdefault((size, concurrency, "Go"), []).append(sample)
        print(f"round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
    return results


class GoPeer:
    """Stock Go Gorums for comparison: five ``gorums-go-peer server`` processes, and
    its ``bench`` client (``WriteQC``, a 16-byte value, majority) run per measurement."""

    def __init__(self, path: Path, servers: list[Child]) -> None:
        self.path = path
        self.servers = servers

    @staticmethod
    def available() -> bool:
        """Whether ``start`` finds the Go peer."""
        try:
            interop.go_peer_path(None)
        except SystemExit:
            return False
        return True

    @classmethod
    def start(cls) -> GoPeer:
        path = interop.go_peer_path(None)
        return cls(path, [interop.spawn_go(path, i) for i in range(1, REPLICAS + 1)])

    def measure(self, size: int, concurrency: int, seconds: float) -> Sample:
        addrs = ",".join(child.info["addr"] for child in self.servers[:size])
        result = interop.measure_go(
            [str(self.path), "bench", "--addrs", addrs],
            concurrency,
            seconds,
            [child.proc.pid for child in self.servers],
        )
        return Sample(
            result.rate,
            [],
            result.client,
            result.servers,
            None,
            result.p50_ms / 1e3,
            result.p99_ms / 1e3,
        )

    def stop(self) -> None:
        for child in self.servers:
            child.stop()


def _batch_size(samples: Sequence[Sample]) -> str:
    sizes = [s.batch for s in samples if s.batch is not None]
    return f"{median(sizes):.1f}" if sizes else "-"


def _batched(node: Node) -> bool:
    return isinstance(node.channel, StreamEndpoint) and node.channel.batched


def report(results: Results, show_names: bool = False) -> None:
    print(machine())
    rows: list[list[object]] = []
    for size in SIZES:
        for concurrency in CONCURRENCY:
            plain = results.samples[(size, concurrency, "plain")]
            for variant in (*VARIANTS, "Go"):
                samples = results.samples.get((size, concurrency, variant), [])
                if not samples:
                    continue
                ratios = [s.rate / p.rate for s, p in zip(samples, plain, strict=True)]
                latencies = sorted(x for s in samples for x in s.latencies)
                plain_latencies = sorted(x for s in plain for x in s.latencies)
                p50 = (
                    percentile(latencies, 0.50)
                    if latencies
                    else median([s.p50 or 0.0 for s in samples])
                )
                p99 = (
                    percentile(latencies, 0.99)
                    if latencies
                    else median([s.p99 or 0.0 for s in samples])
                )
                rows.append(
                    [
                        size,
                        concurrency,
                        variant,
                        median([s.rate for s in samples]),
                        median(ratios),
                        spread(ratios),
                        p50 * 1e3,
                        p99 * 1e3,
                        p99 / percentile(plain_latencies, 0.99),
                        median([s.coordinator_us for s in samples]),
                        median([s.replicas_us for s in samples]),
                        _batch_size(samples),
                    ]
                )
    print_table(
        "Majority quorum calls (coordinator process + replica processes, loopback)",
        [
            "replicas",
            "in flight",
            "variant",
            "calls/s",
            "x plain",
            "x plain min-max",
            "p50 ms",
            "p99 ms",
            "p99 x plain",
            "coordinator CPU µs/call",
            "replicas CPU µs/call",
            "messages per write",
        ],
        rows,
    )
    report_threads(results, show_names)


def report_threads(results: Results, show_names: bool) -> None:
    """CPU per call by thread: the asyncio (main) thread against grpc's threads."""
    rows: list[list[object]] = []
    for size in SIZES:
        for concurrency in CONCURRENCY:
            for variant in (*VARIANTS, "Go"):
                samples = results.samples.get((size, concurrency, variant), [])
                if not samples:
                    continue
                python = variant != "Go"  # Go has no asyncio thread: its total only
                row: list[object] = [size, concurrency, variant]
                row += thread_cells([s.coordinator for s in samples], split=python)
                row += thread_cells([s.replicas for s in samples], split=python)
                if show_names:
                    row.append(thread_names([s.coordinator for s in samples]) if python else "-")
                    row.append(thread_names([s.replicas for s in samples]) if python else "-")
                rows.append(row)
    headers = ["replicas", "in flight", "variant"]
    headers += thread_headers(("coordinator", "replicas"), names=show_names)
    print_table(
        "CPU µs per call by thread: the asyncio (main) thread and all others (grpc's poller"
        " thread, timer, event engine); runs: times any thread got a CPU, per call;"
        " replicas summed; medians over rounds",
        headers,
        rows,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve-replica", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--nodes", help=argparse.SUPPRESS)
    parser.add_argument("--plain-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=0.6, help="measured seconds per run")
    parser.add_argument(
        "--thread-names",
        action="store_true",
        help="also break the non-main threads' CPU down by thread name",
    )
    add_nice_option(parser)
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    if args.serve_replica:
        nodes: dict[str, Any] = json.loads(args.nodes)
        asyncio.run(
            serve_replica(
                args.serve_replica, {int(k): str(v) for k, v in nodes.items()}, args.plain_port
            )
        )
        return
    asyncio.run(drive(args.rounds, args.seconds, args.thread_names))


if __name__ == "__main__":
    main()
