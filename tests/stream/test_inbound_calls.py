"""Calls from a server back to the peers connected to it, over their own streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import (
    HandlerRegistry,
    InboundManager,
    OutboundManager,
    add_node_stream_service,
    current_peer,
    with_nodes,
)
from gorums_mw._inbound.membership import FIRST_CLIENT_ID
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports
from tests import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.usefixtures("both_framings")

SAY = "echo.Echo.Say"
Request = echo_pb2.EchoRequest
Reply = echo_pb2.EchoReply


class Answer(echo_pb2_grpc.EchoServicer):
    def __init__(self, name: int) -> None:
        self.name = name

    async def Say(self, request: Any, context: Any) -> Reply:
        return Reply(text=request.text, number=current_peer().id, node_id=self.name)


def registry(name: int) -> HandlerRegistry:
    handlers = HandlerRegistry()
    echo_pb2_grpc.add_EchoServicer_to_server(Answer(name), handlers)  # type: ignore[arg-type]
    return handlers


class Server:
    """A plain grpc.aio server with the interceptor, NodeStream and a manager."""

    def __init__(self, manager: InboundManager, address: str) -> None:
        self.manager = manager
        self.server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
        add_node_stream_service(manager, self.server)
        self.server.add_insecure_port(address)


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[InboundManager, list[OutboundManager]]]:
    ports = free_ports(4)
    nodes = {i + 1: f"127.0.0.1:{port}" for i, port in enumerate(ports)}
    manager = InboundManager(1, with_nodes(nodes), handlers=registry(1))
    server = Server(manager, nodes[1])
    await server.server.start()
    peers = [
        OutboundManager(
            with_nodes({1: nodes[1]}), my_addr=nodes[peer_id], handlers=registry(peer_id)
        )
        for peer_id in (2, 3, 4)
    ]
    for peer in peers:
        await peer.start()
    yield manager, peers
    for peer in peers:
        await peer.stop()
    await server.server.stop(None)


async def test_server_initiated_quorum_call(
    cluster: tuple[InboundManager, list[OutboundManager]],
) -> None:
    manager, peers = cluster
    config = await manager.wait_for_config(lambda c: c.ids == (2, 3, 4), timeout=10)
    replies = await config.quorum_call(SAY, Request(text="from server"), Reply, quorum=3, timeout=5)
    assert {nid: r.node_id for nid, r in replies.items()} == {2: 2, 3: 3, 4: 4}
    # Each peer's own handler saw the server as node 1 (over the stream it dialed).
    assert all(r.number == 1 and r.text == "from server" for r in replies.values())
    # The peers can call the server over the same streams.
    for peer in peers:
        await peer.wait_connected(timeout=5)
        reply = await peer.config().node(1).rpc(SAY, Request(text="up"), Reply, timeout=5)
        assert reply.node_id == 1
    assert reply.number == 4  # the server identified the caller


async def test_peer_leaving_fails_calls_fast(
    cluster: tuple[InboundManager, list[OutboundManager]],
) -> None:
    manager, peers = cluster
    config = await manager.wait_for_config(lambda c: c.ids == (2, 3, 4), timeout=10)
    await peers[0].stop()
    await manager.wait_for_config(lambda c: c.ids == (3, 4), timeout=5)
    node2 = config.node(2)
    assert not node2.connected
    with pytest.raises(Exception) as info:
        await node2.rpc(SAY, Request(), Reply, timeout=5)
    assert getattr(info.value, "code", None) == grpc.StatusCode.UNAVAILABLE


async def test_reverse_calls_to_client_peers() -> None:
    """Clients with no listening address: the server calls them back."""
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    manager = InboundManager(1, with_nodes({1: address}))
    server = Server(manager, address)
    await server.server.start()
    clients = [
        OutboundManager(with_nodes({1: address}), client_peer=True, handlers=registry(100 + i))
        for i in range(3)
    ]
    try:
        for client in clients:
            await client.start()
        config = await manager.wait_for_config(lambda c: True, timeout=1)
        assert config.ids == ()  # client peers are never in the replica configuration
        clients_config = await manager.wait_for_clients(lambda c: len(c) == 3, timeout=10)
        assert all(node_id >= FIRST_CLIENT_ID for node_id in clients_config.ids)
        replies = await clients_config.quorum_call(
            SAY, Request(text="ping"), Reply, quorum=3, timeout=5
        )
        assert sorted(r.node_id for r in replies.values()) == [100, 101, 102]
        await clients[0].stop()
        await manager.wait_for_clients(lambda c: len(c) == 2, timeout=10)
    finally:
        for client in clients:
            await client.stop()
        await server.server.stop(None)
