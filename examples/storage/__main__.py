"""A replicated register in the style of ABD, on symmetric gorums-mw replicas.

Run it::

    python -m examples.storage                 # 3 replicas here, a workload, a restart
    python -m examples.storage --replicas 5 --ops 1000

    # one replica per process (three terminals, or three machines):
    python -m examples.storage --id 1 --nodes 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003
    python -m examples.storage --id 2 --nodes 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003
    python -m examples.storage --id 3 --nodes 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003
    # and the workload against them, from a fourth:
    python -m examples.storage --nodes 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003

    # a replica that keeps its register in a file, so a restart finds it, and
    # notices a vanished peer within 2 s instead of 10 s:
    python -m examples.storage --id 1 --nodes ... --data replica1.jsonl --keepalive 1

    # in a container, bind every interface and name the replicas by DNS
    # (deploy/kubernetes/ runs it so, one replica per pod):
    python -m examples.storage --id 1 --listen 0.0.0.0:9001 \
        --nodes 1=store-0.store:9001,2=store-1.store:9001,3=store-2.store:9001

A replica serves the standard ``grpc.health.v1.Health`` service on its port:
``""`` (the whole server) is ``SERVING`` while a quorum of replicas is
connected, and ``liveness`` is ``SERVING`` for as long as the replica answers
at all, for probes that must not fail merely because the quorum is lost.

The exit code is 0 when every operation succeeded and every read returned
the latest completed write, 1 otherwise, and 130 after Ctrl-C.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc loads: no transport chatter

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path

from grpc_health.v1 import health_pb2

from examples import storage_pb2_grpc
from examples.storage.replica import StorageReplica, Store
from examples.storage.workload import Console, Summary, Workload
from gorums_mw import (
    Configuration,
    InboundNodeOption,
    Keepalive,
    System,
    add_quorum_health,
    with_nodes,
)
from gorums_mw.testing import free_ports

INTERRUPTED = 130
LIVENESS = "liveness"
"""Health service name that is ``SERVING`` while the replica answers (quorum or not)."""


def parse_nodes(text: str) -> InboundNodeOption:
    """``1=host:port,2=host:port`` as ``with_nodes({1: "host:port", 2: "host:port"})``."""
    nodes: dict[int, str] = {}
    for item in text.split(","):
        node_id, sep, address = item.partition("=")
        if not sep or not node_id.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected ID=HOST:PORT, got {item!r}")
        nodes[int(node_id)] = address.strip()
    try:
        return with_nodes(nodes)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


async def replica(
    node_id: int,
    nodes: InboundNodeOption,
    store: Store,
    console: Console,
    listen: str | None = None,
    keepalive: Keepalive | None = None,
) -> StorageReplica:
    """Replica ``node_id`` (``.system``) with health; it reports its configuration.

    Health ``""`` follows the quorum (``add_quorum_health``); ``LIVENESS``
    is always ``SERVING``. ``listen`` is the address to bind, by default
    the replica's own address in ``nodes``; ``keepalive`` is the System's.
    """

    def show(config: Configuration) -> None:
        console.say(f"replica {node_id}: configuration {list(config.ids)}")

    system = System(node_id, nodes, listen=listen, keepalive=keepalive, on_config_change=show)
    servicer = StorageReplica(system, store)
    system.add_servicer(storage_pb2_grpc.add_StorageServicer_to_server, servicer)
    health = add_quorum_health(system)
    await health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    return servicer


async def wait_full(systems: Sequence[System], timeout: float = 10.0) -> None:
    """Wait until every one of ``systems`` has all of them in its configuration."""
    wanted = tuple(sorted(system.id for system in systems))
    await asyncio.gather(
        *(system.wait_for_config(lambda c: c.ids == wanted, timeout) for system in systems)
    )


def verdict(summary: Summary, console: Console, notes: Sequence[str] = ()) -> int:
    """Print the summary and ``notes``; return the exit code."""
    console.progress("")
    for line in (*summary.report(), *notes):
        console.say(line)
    if summary.wrong or summary.failed:
        console.say("FAILED: see above")
        return 1
    console.say("OK: every operation succeeded and every read returned the latest write")
    return 0


async def demo(size: int, ops: int, console: Console) -> int:
    """``size`` replicas in this process; a workload during which the last one restarts."""
    nodes = with_nodes({i + 1: f"127.0.0.1:{port}" for i, port in enumerate(free_ports(size))})
    listing = " ".join(f"{node_id}={address}" for node_id, address in nodes.nodes.items())
    console.say(f"storage: {size} replicas on loopback: {listing}")
    stores = {node_id: Store() for node_id in nodes.nodes}
    systems: dict[int, System] = {}
    servicers: list[StorageReplica] = []
    victim = size
    workload = Workload(list(nodes.nodes.values()))

    async def start(node_id: int) -> None:
        servicers.append(await replica(node_id, nodes, stores[node_id], console))
        systems[node_id] = servicers[-1].system
        await systems[node_id].start()

    async def script(done: int) -> None:
        if done == ops // 3:
            console.say(f"stopping replica {victim} after {done} operations")
            await systems.pop(victim).stop()
        elif done == 2 * ops // 3:
            console.say(f"restarting replica {victim} after {done} operations")
            await start(victim)

    try:
        for node_id in nodes.nodes:
            await start(node_id)
        await wait_full(list(systems.values()))
        console.say(f"all {size} replicas connected; running {ops} operations")
        summary = await workload.run(ops, console, script)
        await wait_full(list(systems.values()))
        console.say(
            f"replica {victim} is back in every configuration; reading every key through it"
        )
        await workload.read_all(via=victim - 1)
        repairs = sum(servicer.write_backs for servicer in servicers)
        note = f"read repairs: {repairs} (reads that found replicas disagreeing wrote back)"
        return verdict(summary, console, [note])
    finally:
        console.close()
        await workload.close()
        # Highest ID first: then no running replica sees a lower one leave, the
        # case where System._wait_while_inbound can spin (reported upstream).
        for node_id in sorted(systems, reverse=True):
            await systems[node_id].stop()


async def serve(
    node_id: int,
    nodes: InboundNodeOption,
    console: Console,
    listen: str | None = None,
    data: Path | None = None,
    keepalive: Keepalive | None = None,
) -> int:
    """Run replica ``node_id`` until interrupted, its store in ``data`` if given."""
    store = Store(data)
    try:
        system = (await replica(node_id, nodes, store, console, listen, keepalive)).system
        where = system.address if listen is None else f"{listen} as {system.address}"
        async with system:
            console.say(
                f"replica {node_id} listening on {where}; "
                f"health SERVING while {len(nodes.nodes) // 2 + 1} of {len(nodes.nodes)} "
                "replicas are connected; Ctrl-C stops it"
            )
            await asyncio.Event().wait()  # until Ctrl-C cancels this task
    finally:
        store.close()
    return 0


async def client(addresses: list[str], ops: int, console: Console) -> int:
    """Run the workload against replicas running elsewhere."""
    workload = Workload(addresses)
    try:
        return verdict(await workload.run(ops, console), console)
    finally:
        console.close()
        await workload.close()


async def until_signal(work: Awaitable[int]) -> int:
    """Run ``work``; on SIGINT or SIGTERM cancel it (its cleanup runs) and return 130."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, interrupt)
    try:
        return await task
    except asyncio.CancelledError:
        if interrupted:
            return INTERRUPTED
        raise
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and run the demo, one replica, or the workload; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.storage",
        description="A replicated register (ABD) on symmetric gorums-mw replicas.",
    )
    parser.add_argument("--id", type=int, help="run this replica of --nodes until Ctrl-C")
    parser.add_argument(
        "--nodes",
        type=parse_nodes,
        help="ID=HOST:PORT,... of every replica; without --id, run the workload against them",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="with --id: the address to bind (default: the replica's own in --nodes), "
        "e.g. 0.0.0.0:9001 in a container",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="with --id: keep the register in FILE (created if missing), so that the replica "
        "restarted with the same FILE has its data back",
    )
    parser.add_argument(
        "--keepalive",
        type=float,
        metavar="SECONDS",
        help="with --id: ping each peer every SECONDS and drop one that does not answer within "
        "SECONDS (default 5)",
    )
    parser.add_argument("--replicas", type=int, default=3, help="replicas of the demo (>= 3)")
    parser.add_argument("--ops", type=int, default=300, help="operations of the workload")
    args = parser.parse_args(argv)
    console = Console()
    if args.id is not None:
        if args.nodes is None or args.id not in args.nodes.nodes:
            parser.error("--id needs --nodes that include it")
        keepalive = None if args.keepalive is None else Keepalive(args.keepalive, args.keepalive)
        work = serve(args.id, args.nodes, console, args.listen, args.data, keepalive)
    elif args.listen is not None or args.data is not None or args.keepalive is not None:
        parser.error("--listen, --data and --keepalive need --id")
    elif args.nodes is not None:
        work = client(list(args.nodes.nodes.values()), args.ops, console)
    else:
        if args.replicas < 3 or args.ops < 3:
            parser.error("the demo needs --replicas >= 3 (a quorum outlives a stop) and --ops >= 3")
        work = demo(args.replicas, args.ops, console)
    code = asyncio.run(until_signal(work))
    if code == INTERRUPTED:
        print("interrupted: stopped cleanly", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
