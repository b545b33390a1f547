"""Calls back over the stream the other end dialed, between Go Gorums and gorums-mw.

A Go Gorums replica dials a gorums-mw server, which calls it back over that
stream; and a gorums-mw client peer dials a Go replica, which calls it back.

The Go replica (``gorums.System``) identifies itself by ``gorums-node-id``
only. The gorums-mw side of the first test is a server alone (InboundManager,
interceptor, NodeStream; it dials nobody), so the only stream between the two
is the one Go dialed: every call we make to Go is server-initiated, with bit
63 set in its message IDs, and Go serves it with its back-channel handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from grpc import aio

from gorums_mw import (
    HandlerRegistry,
    InboundManager,
    OutboundManager,
    add_node_stream_service,
    with_nodes,
)
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports
from tests.interop.conftest import StartGo
from tests.interop.proto import storage_pb2_grpc
from tests.interop.storage import (
    READ_QC,
    READ_RPC,
    WHOAMI,
    WRITE_MULTICAST,
    ReadRequest,
    ReadResponse,
    Storage,
    WriteRequest,
    at,
)
from tests.reliability.replica_proc import node_args

GO, PY = 1, 2
SETTLE = 1.0
"""Seconds the Go replica waits for its peers before it reports."""


@pytest.fixture
async def py_server() -> AsyncIterator[tuple[InboundManager, dict[int, str]]]:
    """A gorums-mw server as node 2 of {1: Go, 2: us}, serving upstream's Storage."""
    nodes = {
        node_id: f"127.0.0.1:{port}" for node_id, port in zip((GO, PY), free_ports(2), strict=True)
    }
    handlers = HandlerRegistry()
    manager = InboundManager(PY, with_nodes(nodes), handlers=handlers)
    storage_pb2_grpc.add_StorageServicer_to_server(Storage(PY), handlers)
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    add_node_stream_service(manager, server)
    server.add_insecure_port(nodes[PY])
    await server.start()
    try:
        yield manager, nodes
    finally:
        await server.stop(None)


async def test_server_calls_a_go_dialer_back(
    py_server: tuple[InboundManager, dict[int, str]], start_go: StartGo
) -> None:
    manager, nodes = py_server
    go = await start_go(
        "replica", "--id", str(GO), "--nodes", node_args(nodes), "--settle", str(SETTLE)
    )
    # Go's gorums-node-id claim, checked against its IP, makes it node 1.
    config = await manager.wait_for_config(lambda c: c.ids == (GO,), timeout=10)
    node = config.node(GO)
    assert isinstance(node.channel, StreamEndpoint) and node.channel.accepted

    # Go serves our requests on the stream it dialed (its handler sees no caller).
    whoami = await node.rpc(READ_RPC, ReadRequest(key=WHOAMI), ReadResponse, timeout=5)
    assert whoami.value == f"server={GO} caller=- impl=go"
    # The inbound configuration holds the peers, not this node: of the two
    # configured, a quorum of this one peer is the caller's choice.
    replies = await config.quorum_call(
        READ_QC, ReadRequest(key=WHOAMI), ReadResponse, quorum=1, timeout=5
    )
    assert {k: v.value for k, v in replies.items()} == {GO: whoami.value}

    sent = await config.multicast(WRITE_MULTICAST, WriteRequest(key="mc", value="m1", time=at(1)))
    assert sent == (GO,)
    # Go serves requests on a stream it dialed concurrently, not in order (upstream
    # at this commit), so a read may overtake the write: read until it shows.
    async with asyncio.timeout(5):
        while True:
            reply = await node.rpc(READ_RPC, ReadRequest(key="mc"), ReadResponse, timeout=5)
            if reply.value == "m1":
                break
            await asyncio.sleep(0.02)

    # And Go's side: its calls over the stream it dialed reach us as from node 1.
    reports = await go.reports(timeout=SETTLE + 10)
    assert reports["config"]["outbound_config"] == [GO, PY]
    assert reports["config"]["inbound_config"] == [GO]  # we dialed nothing
    assert reports["outbound_qc"]["replies"][str(PY)] == f"server={PY} caller={GO} impl=py"


async def test_go_replica_calls_a_client_peer_back(start_go: StartGo) -> None:
    """``gorums-node-id: 0`` (sent by a client peer) puts us in Go's ClientConfig()."""
    (port,) = free_ports(1)
    addr = f"127.0.0.1:{port}"
    go = await start_go("replica", "--id", str(GO), "--nodes", f"{GO}={addr}", "--settle", "1")
    handlers = HandlerRegistry()
    storage_pb2_grpc.add_StorageServicer_to_server(Storage(0), handlers)
    async with OutboundManager(
        with_nodes({GO: addr}), client_peer=True, handlers=handlers
    ) as dialer:
        await dialer.wait_connected(timeout=5)
        node = dialer.config().node(GO)
        whoami = await node.rpc(READ_RPC, ReadRequest(key=WHOAMI), ReadResponse, timeout=5)
        assert whoami.value == f"server={GO} caller=0 impl=go"
        reports = await go.reports(timeout=10)
    first_client = 1 << 20  # Go numbers client peers from 2**20
    assert reports["config"]["client_config"] == [first_client]
    # Go's call over its ClientConfig() reached our handlers, which know who called.
    assert reports["client_qc"]["replies"] == {str(first_client): f"server=0 caller={GO} impl=py"}
