"""PeerIdentityInterceptor and ClientIdentityInterceptor on real grpc.aio servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import InboundManager, current_peer, with_nodes
from gorums_mw.interceptors import ClientIdentityInterceptor, PeerIdentityInterceptor
from tests.conftest import Spans, bind

FAMILIES = ["ipv4", "ipv6", "unix"]
CHAT = "/t.Kinds/Chat"


class Kinds:
    """One handler of each kind; each answers with the identified caller's ID."""

    def __init__(self) -> None:
        self.chat_started = asyncio.Event()
        self.release_chat = asyncio.Event()

    async def unary(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        return str(current_peer().id).encode()

    async def server_stream(
        self, request: bytes, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        for _ in range(2):
            yield str(current_peer().id).encode()

    async def server_stream_writer(
        self, request: bytes, context: aio.ServicerContext[Any, Any]
    ) -> None:
        for _ in range(2):
            await context.write(str(current_peer().id).encode())

    async def client_stream(
        self, request_iterator: Any, context: aio.ServicerContext[Any, Any]
    ) -> bytes:
        count = 0
        async for _ in request_iterator:
            count += 1
        return f"{current_peer().id}:{count}".encode()

    async def bidi(
        self, request_iterator: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        async for message in request_iterator:
            yield message + str(current_peer().id).encode()

    async def bidi_reader(
        self, request_iterator: Any, context: aio.ServicerContext[Any, Any]
    ) -> None:
        while True:
            message = await context.read()
            if message is aio.EOF:
                return
            await context.write(message + str(current_peer().id).encode())

    async def chat(
        self, request_iterator: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        """A registered stream: held open until the test releases it."""
        self.chat_started.set()
        yield str(current_peer().id).encode()
        await self.release_chat.wait()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "t.Kinds",
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
                "ServerStreamWriter": grpc.unary_stream_rpc_method_handler(
                    self.server_stream_writer
                ),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
                "BidiReader": grpc.stream_stream_rpc_method_handler(self.bidi_reader),
                "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
            },
        )


class Harness:
    def __init__(self, family: str, unix_dir: str, spans: Spans) -> None:
        self.family = family
        self.unix_dir = unix_dir
        self.spans = spans
        self.kinds = Kinds()
        self.server = aio.server()
        self.listener = bind(self.server, family, unix_dir)
        ip = self.listener.client_ip
        self.replica_addr = f"{ip}:9002"
        nodes = {1: f"{ip}:9001", 2: self.replica_addr, 3: "192.0.2.3:9003"}
        self.manager = InboundManager(1, with_nodes(nodes), tracer_provider=spans.provider)
        interceptor = PeerIdentityInterceptor(self.manager, register_methods=[CHAT])
        self.server = aio.server(interceptors=[interceptor])
        self.listener = bind(self.server, family, unix_dir)
        self.server.add_generic_rpc_handlers((self.kinds.handler(),))
        self.channels: list[aio.Channel] = []

    def channel(self, claimed: str | None) -> aio.Channel:
        interceptors = ClientIdentityInterceptor(claimed) if claimed else None
        channel = aio.insecure_channel(self.listener.target, interceptors=interceptors)
        self.channels.append(channel)
        return channel

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        await self.server.stop(None)


@pytest.fixture(params=FAMILIES)
async def harness(
    request: pytest.FixtureRequest, unix_dir: str, spans: Spans
) -> AsyncIterator[Harness]:
    h = Harness(request.param, unix_dir, spans)
    await h.server.start()
    yield h
    await h.close()


async def all_kinds(channel: aio.Channel) -> list[bytes]:
    unary = await channel.unary_unary("/t.Kinds/Unary")(b"", timeout=5)
    streamed = [m async for m in channel.unary_stream("/t.Kinds/ServerStream")(b"", timeout=5)]
    written = [m async for m in channel.unary_stream("/t.Kinds/ServerStreamWriter")(b"", timeout=5)]

    async def three() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x"

    counted = await channel.stream_unary("/t.Kinds/ClientStream")(three(), timeout=5)
    echoed = [m async for m in channel.stream_stream("/t.Kinds/Bidi")(three(), timeout=5)]
    read = [m async for m in channel.stream_stream("/t.Kinds/BidiReader")(three(), timeout=5)]
    return [unary, *streamed, *written, counted, *echoed, *read]


async def test_replica_identified_in_all_handler_kinds(harness: Harness) -> None:
    replies = await all_kinds(harness.channel(harness.replica_addr))
    assert replies == [
        b"2",
        b"2",
        b"2",
        b"2",
        b"2",
        b"2:3",
        b"x2",
        b"x2",
        b"x2",
        b"x2",
        b"x2",
        b"x2",
    ]


async def test_external_client_served_as_id_0(harness: Harness) -> None:
    replies = await all_kinds(harness.channel(None))
    assert replies == [
        b"0",
        b"0",
        b"0",
        b"0",
        b"0",
        b"0:3",
        b"x0",
        b"x0",
        b"x0",
        b"x0",
        b"x0",
        b"x0",
    ]
    unknown = await all_kinds(harness.channel(f"{harness.listener.client_ip}:7777"))
    assert unknown[0] == b"0"


async def test_spoofed_claim_refused_and_nothing_registered(harness: Harness) -> None:
    channel = harness.channel("192.0.2.3:9003")  # node 3's address, not our IP
    with pytest.raises(aio.AioRpcError) as info:
        await channel.unary_unary("/t.Kinds/Unary")(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "192.0.2.3:9003" in (info.value.details() or "")
    call = channel.stream_stream(CHAT)(timeout=5)
    with pytest.raises(aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert harness.manager.inbound_config().ids == ()
    assert len(harness.spans.named("gorums.peer.reject")) == 2
    assert harness.spans.named("gorums.peer.register") == []


async def test_malformed_claim_is_invalid_argument(harness: Harness) -> None:
    channel = harness.channel(None)
    for bad in ["127.0.0.1", "bad host:1", "[::1]:99999", "x" * 1000]:
        with pytest.raises(aio.AioRpcError) as info:
            await channel.unary_unary("/t.Kinds/Unary")(
                b"", metadata=(("gorums-addr", bad),), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
    twice = (("gorums-addr", harness.replica_addr), ("gorums-addr", harness.replica_addr))
    with pytest.raises(aio.AioRpcError) as info:
        await channel.unary_unary("/t.Kinds/Unary")(b"", metadata=twice, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert harness.manager.inbound_config().ids == ()


async def test_registered_stream_lifecycle(harness: Harness) -> None:
    """A replica's stream registers it; cancelling removes it; reconnecting restores it."""
    channel = harness.channel(harness.replica_addr)
    manager = harness.manager
    for _ in range(2):
        harness.kinds.chat_started.clear()
        call = channel.stream_stream(CHAT)()
        assert await call.read() == b"2"
        config = await manager.wait_for_config(lambda c: c.ids == (2,), timeout=5)
        assert config[0].address == harness.replica_addr
        call.cancel()
        await manager.wait_for_config(lambda c: c.ids == (), timeout=5)
    decisions = [
        s.attributes["gorums.decision"] for s in harness.spans.named("gorums.peer.register")
    ]
    assert decisions == ["registered", "registered"]
    unregister = harness.spans.named("gorums.peer.unregister")
    assert len(unregister) == 2
    assert unregister[0].attributes["gorums.config.size"] == 0
    assert str(unregister[0].attributes["gorums.peer.real_address"]).startswith(harness.family)


async def test_unregistered_methods_do_not_register(harness: Harness) -> None:
    channel = harness.channel(harness.replica_addr)
    call = channel.stream_stream("/t.Kinds/BidiReader")()
    await call.write(b"a")
    assert await call.read() == b"a2"
    assert harness.manager.inbound_config().ids == ()
    await call.done_writing()


class Details:
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


async def test_wrappers_are_built_once_per_method_and_externals_pass_through() -> None:
    manager = InboundManager(1, with_nodes({1: "127.0.0.1:9001", 2: "127.0.0.1:9002"}))
    interceptor = PeerIdentityInterceptor(manager)
    handler = grpc.unary_unary_rpc_method_handler(Kinds().unary)

    async def continuation(details: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return handler

    replica = Details("/t.Kinds/Unary", (("gorums-addr", "127.0.0.1:9002"),))
    first = await interceptor.intercept_service(continuation, replica)  # type: ignore[arg-type]
    second = await interceptor.intercept_service(continuation, replica)  # type: ignore[arg-type]
    assert first is second and first is not handler
    external = Details("/t.Kinds/Unary", (("user-agent", "x"),))
    assert await interceptor.intercept_service(continuation, external) is handler  # type: ignore[arg-type]
