"""StreamEndpoint as a pure unit: two ends joined by in-memory queues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from gorums_mw import CallError
from gorums_mw._identity.peer import Peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw._stream.framing import PlainFraming
from gorums_mw._stream.messages import SERVER_ID_BIT
from gorums_mw._stream.registry import HandlerRegistry
from tests import echo_pb2, echo_pb2_grpc
from tests.stream.sink import FutureSink

SAY = "echo.Echo.Say"


class Slow(echo_pb2_grpc.EchoServicer):
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def Say(self, request, context):
        self.started.set()
        await self.release.wait()
        return echo_pb2.EchoReply(text=request.text)


Pair = tuple[StreamEndpoint, StreamEndpoint, Slow]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """A dialing end and an accepting end whose handler waits for ``release``."""
    servicer = Slow()
    registry = HandlerRegistry()
    echo_pb2_grpc.add_EchoServicer_to_server(servicer, registry)  # type: ignore[arg-type]
    to_server: asyncio.Queue[Message | None] = asyncio.Queue()
    to_client: asyncio.Queue[Message | None] = asyncio.Queue()
    client = StreamEndpoint(Peer(1, "c", "c"), None, accepted=False)
    server = StreamEndpoint(Peer(2, "s", "s"), registry, accepted=True)

    async def client_write(message: Message) -> None:
        await to_server.put(message)

    async def server_write(message: Message) -> None:
        await to_client.put(message)

    tasks = [
        asyncio.create_task(client.run(PlainFraming(to_client.get, client_write))),
        asyncio.create_task(server.run(PlainFraming(to_server.get, server_write))),
    ]
    yield client, server, servicer
    client.close()
    server.close()
    await asyncio.gather(*tasks)


def say(text: str) -> bytes:
    return echo_pb2.EchoRequest(text=text).SerializeToString()


async def test_request_ids_never_collide() -> None:
    dialer = StreamEndpoint(Peer(1, "", ""), None, accepted=False)
    acceptor = StreamEndpoint(Peer(2, "", ""), None, accepted=True)
    assert not dialer.accepted and acceptor.accepted
    assert next(dialer._ids) & SERVER_ID_BIT == 0
    assert next(acceptor._ids) & SERVER_ID_BIT


async def test_close_fails_calls_in_flight_at_once(pair: Pair) -> None:
    client, _, servicer = pair
    sink = FutureSink()
    reply = sink.send(client, SAY, say("x"))
    await asyncio.wait_for(servicer.started.wait(), 5)
    client.close()
    with pytest.raises(CallError) as info:
        await asyncio.wait_for(reply, 5)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(CallError):
        sink.send(client, SAY, say("after"))


async def test_retire_answers_calls_in_flight_then_closes(pair: Pair) -> None:
    client, server, servicer = pair
    reply = FutureSink().send(client, SAY, say("in flight"))
    await asyncio.wait_for(servicer.started.wait(), 5)
    server.retire()  # the accepting end lost a tiebreak while serving
    await asyncio.sleep(0)
    assert not server.closed
    servicer.release.set()
    message = await asyncio.wait_for(reply, 5)
    assert echo_pb2.EchoReply.FromString(message.payload).text == "in flight"
    await asyncio.wait_for(server.wait_closed(), 5)
    assert server.closed
