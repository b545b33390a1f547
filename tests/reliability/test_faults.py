"""Faults with real processes: SIGKILL, SIGSTOP/SIGCONT, a server restart.

The observer is a ``System`` in the test process (ID 1); the other replicas
are child processes. Every wait is bounded by the keepalive bound plus slack.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import pytest

from gorums_mw import Backoff, Keepalive, System, with_nodes
from gorums_mw.testing import free_ports
from tests import echo_pb2, echo_pb2_grpc
from tests.reliability._procs import ReplicaProcess
from tests.reliability.replica_proc import Echo

KEEPALIVE = Keepalive(interval=0.5, timeout=0.5)
SLACK = 3.0  # scheduling, process start-up and grpc's reconnect on a loaded 2-core machine
SAY = "echo.Echo.Say"


class Cluster:
    def __init__(self, size: int) -> None:
        ports = free_ports(size)
        self.nodes = {i + 1: f"127.0.0.1:{port}" for i, port in enumerate(ports)}
        self.observer = self.new_observer()
        keepalive = (KEEPALIVE.interval, KEEPALIVE.timeout)
        self.procs = {i: ReplicaProcess(i, self.nodes, keepalive) for i in self.nodes if i != 1}

    def new_observer(self) -> System:
        """Replica 1, in this process."""
        observer = System(
            1,
            with_nodes(self.nodes),
            keepalive=KEEPALIVE,
            backoff=Backoff(initial=0.02, maximum=0.25),
        )
        observer.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, Echo(1))
        return observer

    async def wait_ids(self, ids: tuple[int, ...], timeout: float) -> float:
        """Seconds until the observer's configuration is exactly ``ids``."""
        started = time.monotonic()
        await self.observer.wait_for_config(lambda c: c.ids == ids, timeout=timeout)
        return time.monotonic() - started


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster(3)
    await c.observer.start()
    await asyncio.gather(*(p.start() for p in c.procs.values()))
    await c.wait_ids((1, 2, 3), timeout=20)
    yield c
    await asyncio.gather(*(p.kill() for p in c.procs.values()))
    await c.observer.stop(None)


async def kill_and_restart(cluster: Cluster, times: int) -> None:
    for _ in range(times):
        await cluster.procs[3].kill()
        gone_after = await cluster.wait_ids((1, 2), timeout=KEEPALIVE.bound + SLACK)
        assert gone_after <= KEEPALIVE.bound + SLACK
        await cluster.procs[3].start()
        await cluster.wait_ids((1, 2, 3), timeout=20)
        replies = await cluster.observer.config().quorum_call(
            SAY, echo_pb2.EchoRequest(), echo_pb2.EchoReply, quorum=3, timeout=5
        )
        assert sorted(replies) == [1, 2, 3]


@pytest.mark.timeout(120)
async def test_killed_replica_leaves_and_returns_every_time(cluster: Cluster) -> None:
    await kill_and_restart(cluster, 3)


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_killed_replica_leaves_and_returns_many_times(cluster: Cluster) -> None:
    await kill_and_restart(cluster, 50)


@pytest.mark.timeout(120)
async def test_stalled_replica_leaves_within_the_keepalive_bound(cluster: Cluster) -> None:
    cluster.procs[2].signal(signal.SIGSTOP)
    try:
        gone_after = await cluster.wait_ids((1, 3), timeout=KEEPALIVE.bound + SLACK)
    finally:
        cluster.procs[2].signal(signal.SIGCONT)
    assert gone_after <= KEEPALIVE.bound + SLACK
    await cluster.wait_ids((1, 2, 3), timeout=20)
    reply = (
        await cluster.observer.config()
        .node(2)
        .rpc(SAY, echo_pb2.EchoRequest(), echo_pb2.EchoReply, timeout=5)
    )
    assert reply.node_id == 2


@pytest.mark.timeout(120)
async def test_server_restart_while_peers_hold_streams() -> None:
    """The observer (the peers' server) restarts; the peers reconnect to it."""
    c = Cluster(3)
    await c.observer.start()
    try:
        await asyncio.gather(*(p.start() for p in c.procs.values()))
        await c.wait_ids((1, 2, 3), timeout=20)
        await c.observer.stop(None)
        c.observer = System(
            1, with_nodes(c.nodes), keepalive=KEEPALIVE, backoff=Backoff(0.02, 0.25)
        )
        c.observer.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, Echo(1))
        await c.observer.start()
        await c.wait_ids((1, 2, 3), timeout=20)
        replies = await c.observer.config().quorum_call(
            SAY, echo_pb2.EchoRequest(), echo_pb2.EchoReply, quorum=3, timeout=5
        )
        assert sorted(replies) == [1, 2, 3]
    finally:
        await asyncio.gather(*(p.kill() for p in c.procs.values()))
        await c.observer.stop(None)
