"""BatchedNodeStream: negotiated between gorums-mw peers, batches that grow under load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc import aio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from gorums_mw import (
    GORUMS_ADDR_KEY,
    InboundManager,
    OutboundManager,
    System,
    add_node_stream_service,
    with_nodes,
)
from gorums_mw._proto.batch_pb2 import Batch
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw._wire import BATCHED_NODE_STREAM_PATH, NODE_STREAM_PATH
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import LocalReplicas, free_ports
from tests import echo_pb2
from tests._echo import setup
from tests.conftest import eventually, points

SAY = "echo.Echo.Say"


class Paths(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Records the path of every call a server receives."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.plain_stream = asyncio.Event()

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        self.seen.append(details.method)
        if details.method == NODE_STREAM_PATH:
            self.plain_stream.set()
        return await continuation(details)


def endpoints(system: System) -> list[StreamEndpoint]:
    return [n.channel for n in system.config() if isinstance(n.channel, StreamEndpoint)]


async def test_gorums_peers_batch_and_batches_grow_under_load() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    async with LocalReplicas(3, setup, meter_provider=meters) as replicas:
        await replicas.wait_full()
        config = replicas[1].config()
        assert all(endpoint.batched for endpoint in endpoints(replicas[1]))
        request = echo_pb2.EchoRequest(text="x")
        await config.quorum_call(SAY, request, echo_pb2.EchoReply, timeout=5)  # one in flight
        calls = [
            config.quorum_call(SAY, request, echo_pb2.EchoReply, timeout=10) for _ in range(200)
        ]
        await asyncio.gather(*calls)
        sizes = points(reader).get("gorums.stream.batch_size", [])
    meters.shutdown()
    assert min(point.min for point in sizes) == 1  # one call in flight: a batch of one
    assert max(point.max for point in sizes) > 1  # 200 at once: batches grew by themselves


async def test_a_dialer_falls_back_to_nodestream_and_remembers() -> None:
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    nodes = with_nodes({1: address})
    dialer = OutboundManager(nodes)  # batching by default
    await dialer.start()
    node = dialer.config().node(1)
    try:
        for restart in range(2):  # the server restarts: the dialer reconnects
            paths = Paths()
            manager = InboundManager(1, nodes)
            server = aio.server(interceptors=[paths, PeerIdentityInterceptor(manager)])
            add_node_stream_service(manager, server, batching=False)  # like Go Gorums
            server.add_insecure_port(address)
            await server.start()
            try:
                await dialer.wait_connected(timeout=10)
                assert isinstance(node.channel, StreamEndpoint) and not node.channel.batched
                # A stream is up once open, before the server sees it: wait for the server.
                await asyncio.wait_for(paths.plain_stream.wait(), 10)
            finally:
                await server.stop(None)
            await eventually(lambda: not node.connected, timeout=10)  # noticed it stopped
            streams = [p for p in paths.seen if p in (NODE_STREAM_PATH, BATCHED_NODE_STREAM_PATH)]
            if restart == 0:  # first contact: tried batched, UNIMPLEMENTED, fell back
                assert streams[:2] == [BATCHED_NODE_STREAM_PATH, NODE_STREAM_PATH]
            else:  # remembered for the address: straight to NodeStream
                assert streams and BATCHED_NODE_STREAM_PATH not in streams
    finally:
        await dialer.stop()


@pytest.mark.parametrize("path", [NODE_STREAM_PATH, BATCHED_NODE_STREAM_PATH])
async def test_garbage_ends_that_stream_only_with_the_same_status(path: str) -> None:
    async with LocalReplicas(1, setup) as replicas:
        address = replicas[1].address
        async with aio.insecure_channel(address) as channel:
            raw = channel.stream_stream(path)()  # bytes as they are
            await raw.write(
                b"\x0a\xff\xff\xff\xff"
            )  # a truncated field: neither a Message nor a Batch
            with pytest.raises(aio.AioRpcError) as info:
                async for _ in raw:
                    pass
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "malformed NodeStream message" in (info.value.details() or "")
            # Another stream on the same connection still works, in either form.
            good = channel.stream_stream(path)(metadata=((GORUMS_ADDR_KEY, "127.0.0.1:1"),))
            request = Message(
                message_seq_no=1,
                method=SAY,
                payload=echo_pb2.EchoRequest(text="ok").SerializeToString(),
            )
            batched = path == BATCHED_NODE_STREAM_PATH
            data = (Batch(messages=[request]) if batched else request).SerializeToString()
            await good.write(data)
            reply = await asyncio.wait_for(good.read(), 5)
            good.cancel()
        if path == BATCHED_NODE_STREAM_PATH:
            (message,) = Batch.FromString(reply).messages
        else:
            message = Message.FromString(reply)
        assert echo_pb2.EchoReply.FromString(message.payload).text == "ok"
