"""with_peer and replicas_only on real servers, unary and streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import InboundManager, Peer, with_nodes
from gorums_mw.interceptors import (
    ClientIdentityInterceptor,
    PeerIdentityInterceptor,
    replicas_only,
    with_peer,
)
from tests.conftest import bind


class Guarded:
    @with_peer
    async def who(self, request: bytes, context: Any, *, peer: Peer) -> bytes:
        return f"{peer.id}@{peer.address}".encode()

    @with_peer
    async def who_stream(self, request: bytes, context: Any, *, peer: Peer) -> AsyncIterator[bytes]:
        yield str(peer.id).encode()
        yield str(peer.is_replica).encode()

    @replicas_only
    async def secret(self, request: bytes, context: Any) -> bytes:
        return b"secret"

    @replicas_only
    async def secret_stream(self, request_iterator: Any, context: Any) -> AsyncIterator[bytes]:
        async for message in request_iterator:
            yield message

    def handler(self) -> Any:
        return grpc.method_handlers_generic_handler(
            "t.Guarded",
            {
                "Who": grpc.unary_unary_rpc_method_handler(self.who),
                "WhoStream": grpc.unary_stream_rpc_method_handler(self.who_stream),
                "Secret": grpc.unary_unary_rpc_method_handler(self.secret),
                "SecretStream": grpc.stream_stream_rpc_method_handler(self.secret_stream),
            },
        )


@pytest.fixture
async def target(unix_dir: str) -> AsyncIterator[str]:
    manager = InboundManager(1, with_nodes({1: "127.0.0.1:9001", 2: "127.0.0.1:9002"}))
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    server.add_generic_rpc_handlers((Guarded().handler(),))
    listener = bind(server, "ipv4", unix_dir)
    await server.start()
    yield listener.target
    await server.stop(None)


async def test_with_peer_hands_the_peer_to_unary_and_streaming(target: str) -> None:
    async with aio.insecure_channel(
        target, interceptors=ClientIdentityInterceptor("127.0.0.1:9002")
    ) as ch:
        assert await ch.unary_unary("/t.Guarded/Who")(b"", timeout=5) == b"2@127.0.0.1:9002"
        streamed = [m async for m in ch.unary_stream("/t.Guarded/WhoStream")(b"", timeout=5)]
        assert streamed == [b"2", b"True"]
    async with aio.insecure_channel(target) as ch:
        assert await ch.unary_unary("/t.Guarded/Who")(b"", timeout=5) == b"0@"


async def test_replicas_only_refuses_external_callers(target: str) -> None:
    async def messages() -> AsyncIterator[bytes]:
        yield b"m"

    async with aio.insecure_channel(target) as ch:
        with pytest.raises(aio.AioRpcError) as info:
            await ch.unary_unary("/t.Guarded/Secret")(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Read without writing: a write racing the server's abort fails locally.
        call = ch.stream_stream("/t.Guarded/SecretStream")(timeout=5)
        with pytest.raises(aio.AioRpcError) as info:
            await call.read()
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with aio.insecure_channel(
        target, interceptors=ClientIdentityInterceptor("127.0.0.1:9002")
    ) as ch:
        assert await ch.unary_unary("/t.Guarded/Secret")(b"", timeout=5) == b"secret"
        assert [
            m async for m in ch.stream_stream("/t.Guarded/SecretStream")(messages(), timeout=5)
        ] == [b"m"]


def test_decorators_only_wrap() -> None:
    async def handler(self: object, request: bytes, context: Any) -> bytes:
        return b""

    wrapped = replicas_only(handler)
    assert wrapped is not handler and wrapped.__wrapped__ is handler  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="async def"):
        replicas_only(lambda request, context: b"")  # type: ignore[arg-type,return-value]


async def test_client_interceptor_replaces_a_caller_supplied_claim(target: str) -> None:
    interceptors = ClientIdentityInterceptor("localhost:9002")
    assert interceptors.address == "127.0.0.1:9002"  # normalized once, here
    assert len(interceptors) == 4
    async with aio.insecure_channel(target, interceptors=interceptors) as ch:
        reply = await ch.unary_unary("/t.Guarded/Who")(
            b"", metadata=(("gorums-addr", "127.0.0.1:1"),), timeout=5
        )
        assert reply == b"2@127.0.0.1:9002"
    with pytest.raises(ValueError):
        ClientIdentityInterceptor("not an address")
