"""A flood of client peers and external streams: beyond the caps of ``Limits`` a stream is
refused ``RESOURCE_EXHAUSTED``, and nothing already registered is disturbed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import (
    GORUMS_CLIENT_KEY,
    InboundManager,
    Limits,
    OutboundManager,
    StreamLimitError,
    add_node_stream_service,
    with_nodes,
)
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports

NODE_STREAM = "/stream.Gorums/NodeStream"
GORUMS_MW_HEADER = "gorums-mw"
LIMITS = Limits(max_client_peers=4, max_streams=6)


class Server:
    def __init__(self, manager: InboundManager, address: str) -> None:
        self.manager = manager
        self.address = address
        self.channel = aio.insecure_channel(address)

    def open(self, *metadata: tuple[str, str]) -> Any:
        """A raw NodeStream with ``metadata`` (it starts at once)."""
        return self.channel.stream_stream(NODE_STREAM)(metadata=metadata)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    ports = free_ports(2)
    nodes = with_nodes({1: f"127.0.0.1:{ports[0]}", 2: f"127.0.0.1:{ports[1]}"})
    manager = InboundManager(1, nodes, limits=LIMITS)
    grpc_server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    add_node_stream_service(manager, grpc_server)
    grpc_server.add_insecure_port(f"127.0.0.1:{ports[0]}")
    await grpc_server.start()
    served = Server(manager, f"127.0.0.1:{ports[0]}")
    try:
        yield served
    finally:
        await served.channel.close(None)
        await grpc_server.stop(None)


async def admitted(call: Any) -> bool:
    """Whether the server took the stream: it answers with its headers at once,
    a refusal with no headers of ours (trailers only)."""
    async with asyncio.timeout(10):
        return GORUMS_MW_HEADER in await call.initial_metadata()


async def refusal(call: Any) -> tuple[grpc.StatusCode, str]:
    async with asyncio.timeout(10):
        return await call.code(), await call.details()


async def test_client_peers_beyond_the_cap_are_refused(server: Server) -> None:
    clients = [server.open((GORUMS_CLIENT_KEY, "1")) for _ in range(LIMITS.max_client_peers)]
    first = await server.manager.wait_for_clients(lambda c: len(c) == 4, timeout=10)
    extra = server.open((GORUMS_CLIENT_KEY, "1"))
    code, details = await refusal(extra)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "holds 4 client peers (Limits.max_client_peers)" in details
    assert server.manager.client_config() == first  # the same peers, undisturbed
    assert not any(call.done() for call in clients)
    # A client that leaves makes room for the next.
    clients[0].cancel()
    await server.manager.wait_for_clients(lambda c: len(c) == 3, timeout=10)
    server.open((GORUMS_CLIENT_KEY, "1"))
    await server.manager.wait_for_clients(lambda c: len(c) == 4, timeout=10)


async def test_external_streams_share_the_stream_cap(server: Server) -> None:
    clients = [server.open((GORUMS_CLIENT_KEY, "1")) for _ in range(4)]
    await server.manager.wait_for_clients(lambda c: len(c) == 4, timeout=10)
    externals = [server.open() for _ in range(2)]  # 4 clients + 2 external = max_streams
    for call in externals:
        assert await admitted(call)
    crowd = [server.open() for _ in range(3)]
    for call in crowd:
        code, details = await refusal(call)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "Limits.max_streams" in details
    assert not any(call.done() for call in clients + externals)
    externals[0].cancel()  # its place is freed when its stream ends on the server
    async with asyncio.timeout(10):
        while not await admitted(server.open()):
            pass


async def test_a_configured_replica_gets_in_when_the_caps_are_reached(server: Server) -> None:
    for _ in range(4):
        server.open((GORUMS_CLIENT_KEY, "1"))
    for _ in range(2):
        server.open()
    await server.manager.wait_for_clients(lambda c: len(c) == 4, timeout=10)
    replica = OutboundManager(
        with_nodes({1: server.address}), my_addr=server.manager.known_nodes[2], my_id=2
    )
    async with replica:
        config = await server.manager.wait_for_config(lambda c: c.ids == (2,), timeout=10)
    assert config.ids == (2,)


def test_caps_are_validated() -> None:
    with pytest.raises(ValueError, match=r"Limits\.max_streams must be a positive int"):
        Limits(max_streams=0)
    with pytest.raises(ValueError, match=r"Limits\.max_client_peers must be a positive int"):
        Limits(max_client_peers=True)
    assert StreamLimitError("max_streams", 6).code == grpc.StatusCode.RESOURCE_EXHAUSTED
