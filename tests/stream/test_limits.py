"""One size limit for every message: an oversized one fails alone, at once, and says why."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import CallError, Limits, System
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.messages import SERVER_ID_BIT
from gorums_mw.testing import LocalReplicas
from tests import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.usefixtures("both_framings")

SAY = "echo.Echo.Say"
LIMIT = 64 * 1024
LIMITS = Limits(max_message=LIMIT, stream_buffer=1024 * 1024)
Request = echo_pb2.EchoRequest
Reply = echo_pb2.EchoReply


class Echo(echo_pb2_grpc.EchoServicer):
    """``number`` < 0 waits for ``release``; ``number`` > 0 replies with that many bytes."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()

    async def Say(self, request: Any, context: Any) -> Reply:
        if request.number < 0:
            self.waiting.set()
            await self.release.wait()
        return Reply(text="y" * max(request.number, 0))


def setup(system: System) -> None:
    system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, Echo())


async def test_an_oversized_request_fails_alone_and_at_once() -> None:
    servicers: dict[int, Echo] = {}

    def setup(system: System) -> None:
        servicers[system.id] = Echo()
        system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, servicers[system.id])

    async with LocalReplicas(2, setup, limits=LIMITS) as replicas:
        await replicas.wait_full()
        node = replicas[1].config().node(2)
        slow = asyncio.ensure_future(node.rpc(SAY, Request(number=-1), Reply, timeout=10))
        await asyncio.wait_for(servicers[2].waiting.wait(), 5)

        start = time.monotonic()
        oversized = Request(text="x" * (LIMIT + 1))
        with pytest.raises(CallError) as info:
            await node.rpc(SAY, oversized, Reply, timeout=10)
        assert time.monotonic() - start < 0.5
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"exceeds the message limit of {LIMIT} bytes" in info.value.details
        # The size is the whole NodeStream message's: payload, method and ID. The
        # ID takes one byte on the stream node 1 dialed, ten on the one node 2
        # dialed (its IDs carry the server bit), which node 1 calls over until
        # its own is up: on a loaded machine the call may go either way.
        payload = oversized.SerializeToString()
        sizes = {
            Message(message_seq_no=seq, method=SAY, payload=payload).ByteSize()
            for seq in (3, SERVER_ID_BIT | 3)
        }
        assert any(f"request of {size} bytes" in info.value.details for size in sizes)

        servicers[2].release.set()  # the call in flight on the same stream is unharmed
        assert (await asyncio.wait_for(slow, 5)).text == ""
        assert node.connected


async def test_an_oversized_reply_fails_that_call_only() -> None:
    async with LocalReplicas(2, setup, limits=LIMITS) as replicas:
        await replicas.wait_full()
        node = replicas[1].config().node(2)
        with pytest.raises(CallError) as info:
            await node.rpc(SAY, Request(number=LIMIT), Reply, timeout=5)
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "reply of" in info.value.details and str(LIMIT) in info.value.details
        assert (await node.rpc(SAY, Request(number=10), Reply, timeout=5)).text == "y" * 10
        assert replicas[1].config().ids == (1, 2)


async def test_the_server_enforces_the_same_limit_on_plain_grpc_calls() -> None:
    async with (
        LocalReplicas(1, setup, limits=LIMITS) as replicas,
        aio.insecure_channel(replicas[1].address) as channel,
    ):
        stub = echo_pb2_grpc.EchoStub(channel)
        with pytest.raises(aio.AioRpcError) as info:
            await stub.Say(Request(text="x" * (LIMIT + 100)), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await stub.Say(Request(number=5), timeout=5)).text == "yyyyy"
