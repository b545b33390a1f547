"""A peer that stops reading its NodeStream stalls no one: every call keeps its timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import (
    GORUMS_ADDR_KEY,
    GORUMS_NODE_ID_KEY,
    CallError,
    HandlerRegistry,
    InboundManager,
    Limits,
    OutboundManager,
    QuorumCallError,
    add_node_stream_service,
    with_nodes,
)
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw._wire import NODE_STREAM_PATH
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports
from tests import echo_pb2, echo_pb2_grpc
from tests.stream.sink import FutureSink

pytestmark = pytest.mark.usefixtures("both_framings")

SAY = "echo.Echo.Say"
BIG = echo_pb2.EchoRequest(text="x" * 64 * 1024)
LIMITS = Limits(max_message=256 * 1024, stream_buffer=512 * 1024)


class Echo(echo_pb2_grpc.EchoServicer):
    async def Say(self, request: Any, context: Any) -> echo_pb2.EchoReply:
        return echo_pb2.EchoReply(text=request.text[:10])


@dataclass
class Cluster:
    """Server 1 with peers 3 and 4 that answer, and peer 2 that stopped reading."""

    manager: InboundManager
    stuck: StreamEndpoint
    filled: FutureSink


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    ports = free_ports(4)
    nodes = {i + 1: f"127.0.0.1:{port}" for i, port in enumerate(ports)}
    manager = InboundManager(1, with_nodes(nodes), limits=LIMITS)
    server = aio.server(
        interceptors=[PeerIdentityInterceptor(manager)], options=LIMITS.grpc_options()
    )
    add_node_stream_service(manager, server)
    server.add_insecure_port(nodes[1])
    await server.start()
    peers = []
    for node_id in (3, 4):
        handlers = HandlerRegistry()
        echo_pb2_grpc.add_EchoServicer_to_server(Echo(), handlers)  # type: ignore[arg-type]
        peers.append(
            OutboundManager(
                with_nodes({1: nodes[1]}), my_addr=nodes[node_id], my_id=node_id, handlers=handlers
            )
        )
    channel = aio.insecure_channel(nodes[1])
    stuck_call = channel.stream_stream(
        NODE_STREAM_PATH,
        request_serializer=Message.SerializeToString,
        response_deserializer=Message.FromString,
    )(metadata=((GORUMS_ADDR_KEY, nodes[2]), (GORUMS_NODE_ID_KEY, "2")))
    try:
        for peer in peers:
            await peer.start()
        await stuck_call.wait_for_connection()  # never reads: its window fills up
        config = await manager.wait_for_config(lambda c: c.ids == (2, 3, 4), timeout=10)
        stuck = config.node(2).channel
        assert isinstance(stuck, StreamEndpoint)
        cluster = Cluster(manager, stuck, FutureSink())
        yield cluster
        cluster.filled.forget_all()
    finally:
        stuck_call.cancel()
        for peer in peers:
            await peer.stop()
        await channel.close(None)
        await server.stop(None)


async def fill(cluster: Cluster) -> list[asyncio.Future[Message]]:
    """Send large requests to the stuck peer until they wait for room."""
    node = cluster.manager.inbound_config().node(2)
    async with asyncio.timeout(10):
        while cluster.stuck.sends_waiting == 0:
            assert node.channel is not None
            cluster.filled.send(node.channel, SAY, BIG.SerializeToString())
            await asyncio.sleep(0.01)  # let the writer hand what it can to grpc
    return cluster.filled.futures


async def timed(call: Any) -> tuple[Any, float]:
    start = time.monotonic()
    async with asyncio.timeout(10):  # on the old code these hung forever
        result = await call
    return result, time.monotonic() - start


async def test_quorum_call_returns_with_the_quorum_of_the_others(cluster: Cluster) -> None:
    await fill(cluster)
    config = cluster.manager.inbound_config()
    replies, elapsed = await timed(
        config.quorum_call(SAY, BIG, echo_pb2.EchoReply, quorum=2, timeout=1.0)
    )
    assert sorted(replies) == [3, 4]
    assert elapsed < 0.9  # did not wait for the stuck node's timeout


async def test_a_quorum_that_needs_the_stuck_peer_fails_at_its_timeout(cluster: Cluster) -> None:
    await fill(cluster)
    waiting = cluster.stuck.sends_waiting
    config = cluster.manager.inbound_config()
    start = time.monotonic()
    with pytest.raises(QuorumCallError) as info:
        await timed(config.quorum_call(SAY, BIG, echo_pb2.EchoReply, quorum=3, timeout=1.0))
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 2.0
    assert sorted(info.value.replies) == [3, 4]
    assert info.value.errors[2].code == grpc.StatusCode.DEADLINE_EXCEEDED
    # The call's own request was given up at its deadline: it no longer waits for
    # room (what fill() left waiting may have gone out meanwhile, never more waits).
    assert cluster.stuck.sends_waiting <= waiting


async def test_rpc_to_the_stuck_peer_keeps_its_timeout(cluster: Cluster) -> None:
    await fill(cluster)
    node = cluster.manager.inbound_config().node(2)
    start = time.monotonic()
    with pytest.raises(CallError) as info:
        await timed(node.rpc(SAY, BIG, echo_pb2.EchoReply, timeout=1.0))
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.9 < time.monotonic() - start < 2.0


async def test_multicast_never_blocks_on_a_full_peer(cluster: Cluster) -> None:
    await fill(cluster)
    config = cluster.manager.inbound_config()
    sent, elapsed = await timed(config.multicast(SAY, BIG))
    assert sent == (3, 4)  # the stuck peer's copy is dropped, not queued
    assert elapsed < 0.5


async def test_buffered_bytes_stay_within_the_stream_bound(cluster: Cluster) -> None:
    await fill(cluster)
    assert cluster.stuck.buffered <= LIMITS.stream_buffer + LIMITS.max_message
    cluster.filled.forget_all()  # the calls gave up: what waited for room never goes
    assert cluster.stuck.sends_waiting == 0
