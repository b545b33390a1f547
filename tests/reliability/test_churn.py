"""Churn under load: many streams connect and leave while quorum calls run."""

from __future__ import annotations

import asyncio
import os
import random
import time

import grpc
import pytest
from grpc import aio

from gorums_mw import (
    GORUMS_ADDR_KEY,
    HandlerRegistry,
    InboundManager,
    QuorumCallError,
    add_node_stream_service,
    with_nodes,
)
from gorums_mw._identity.peer import Peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw._stream.framing import PlainFraming
from gorums_mw._wire import NODE_STREAM_PATH
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports
from tests import echo_pb2, echo_pb2_grpc
from tests.conftest import eventually
from tests.reliability.replica_proc import Echo

pytestmark = pytest.mark.usefixtures("both_framings")

CHURNERS = int(os.environ.get("GORUMS_CHURNERS", "200"))
CHURN_SECONDS = float(os.environ.get("GORUMS_CHURN_SECONDS", "3"))
STABLE = 5
SAY = "echo.Echo.Say"


def registry() -> HandlerRegistry:
    handlers = HandlerRegistry()
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(0), handlers)  # type: ignore[arg-type]
    return handlers


async def hold_stream(channel: aio.Channel, node_id: int, addr: str, until: asyncio.Event) -> None:
    """Open a NodeStream as node ``node_id``, answer calls on it until ``until`` is set."""
    call = channel.stream_stream(
        NODE_STREAM_PATH,
        request_serializer=Message.SerializeToString,
        response_deserializer=Message.FromString,
    )(metadata=((GORUMS_ADDR_KEY, addr),))
    endpoint = StreamEndpoint(Peer(node_id, addr, addr), registry(), accepted=False)
    running = asyncio.create_task(endpoint.run(PlainFraming(call.read, call.write)))
    try:
        await until.wait()
    finally:
        endpoint.close()
        call.cancel()
        await running


async def churn(
    channel: aio.Channel, node_id: int, addr: str, deadline: float, rng: random.Random
) -> int:
    """Connect and leave again and again until ``deadline``; return the sessions."""
    sessions = 0
    while time.monotonic() < deadline:
        leave = asyncio.Event()
        holder = asyncio.create_task(hold_stream(channel, node_id, addr, leave))
        await asyncio.sleep(rng.random() * 0.2)  # how long this session lasts: the workload itself
        leave.set()
        await holder
        sessions += 1
    return sessions


@pytest.mark.timeout(120)
async def test_churn_leaves_a_true_configuration_and_no_leaks() -> None:
    rng = random.Random(7)
    (port,) = free_ports(1)
    server_addr = f"127.0.0.1:{port}"
    # Known nodes claim distinct ports on 127.0.0.1 (they need not listen).
    nodes = {
        1: server_addr,
        **{i: f"127.0.0.1:{20000 + i}" for i in range(2, STABLE + CHURNERS + 2)},
    }
    manager = InboundManager(1, with_nodes(nodes), handlers=registry())
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    add_node_stream_service(manager, server)
    server.add_insecure_port(server_addr)
    await server.start()
    channels = [aio.insecure_channel(server_addr) for _ in range(4)]
    baseline_tasks = len(asyncio.all_tasks())
    stable_ids = tuple(range(2, STABLE + 2))
    stop_stable = asyncio.Event()
    try:
        stable = [
            asyncio.create_task(hold_stream(channels[i % 4], i, nodes[i], stop_stable))
            for i in stable_ids
        ]
        await manager.wait_for_config(lambda c: set(stable_ids) <= set(c.ids), timeout=10)
        deadline = time.monotonic() + CHURN_SECONDS
        churners = [
            asyncio.create_task(churn(channels[i % 4], i, nodes[i], deadline, rng))
            for i in range(STABLE + 2, STABLE + CHURNERS + 2)
        ]
        ok = failed = 0
        while time.monotonic() < deadline:
            config = manager.inbound_config()
            try:
                # Most configured peers come and go: a quorum of the stable ones.
                await config.quorum_call(
                    SAY, echo_pb2.EchoRequest(), echo_pb2.EchoReply, quorum=STABLE, timeout=5
                )
                ok += 1
            except QuorumCallError as error:
                # Only peers that left mid-call may fail, and they fail fast.
                assert {e.code for e in error.errors.values()} <= {grpc.StatusCode.UNAVAILABLE}
                failed += 1
        sessions = sum(await asyncio.gather(*churners))
        assert sessions >= CHURNERS  # every churner came and went at least once
        assert ok > 0
        # Afterwards the configuration is exactly the live peers and nothing
        # leaked. A churner's last streams may still reach the server after
        # its client gave up (200 churners queue many); each registers and
        # leaves as soon as grpc delivers the cancellation, which no event
        # announces: poll until everything is quiet, bounded.
        # Per stable stream there remain the client's holder, endpoint run,
        # reader, writer and grpc status task, and the server's two grpc RPC
        # tasks, reader and writer.
        expected_tasks = baseline_tasks + STABLE * (5 + 4)

        def quiet() -> bool:
            return (
                len(asyncio.all_tasks()) == expected_tasks
                and manager.stats().registrations == STABLE
                and manager.inbound_config().ids == stable_ids
            )

        await eventually(quiet, timeout=20)
        config = manager.inbound_config()
        assert manager.stats().inbound == stable_ids
        assert manager.stats().outbound == ()
        assert all(
            isinstance(n.channel, StreamEndpoint) and n.channel.in_flight == 0 for n in config
        )
        replies = await config.quorum_call(
            SAY, echo_pb2.EchoRequest(), echo_pb2.EchoReply, quorum=STABLE, timeout=5
        )
        assert sorted(replies) == list(stable_ids)
    finally:
        stop_stable.set()
        await asyncio.gather(*stable, return_exceptions=True)
        for channel in channels:
            await channel.close(None)
        await server.stop(None)
    await eventually(
        lambda: not manager.stats().registrations, timeout=10
    )  # cancelled handlers clean up
    assert manager.inbound_config().ids == ()
