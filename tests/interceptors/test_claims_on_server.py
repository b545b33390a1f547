"""Claims on real grpc.aio servers: malformed hosts refused, and what localhost means.

The claims travel as plain call metadata from a plain grpc.aio channel, as a
hand-written or foreign client would send them. Pure units of the same
rules: tests/identity/test_claims.py and tests/identity/test_localhost.py.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import InboundManager, InvalidAddressError, current_peer, identify_peer, with_nodes
from gorums_mw.interceptors import PeerIdentityInterceptor
from tests.conftest import bind
from tests.identity.test_claims import MALFORMED_HOSTS

WHO = "/t.Claims/Who"
CHAT = "/t.Claims/Chat"
ASK = "/t.Plain/IdentifyPeer"
NODES = {1: "127.0.0.1:9001", 2: "localhost:9002", 3: "[::1]:9003", 4: "192.0.2.4:9004"}

Metadata = tuple[tuple[str, str], ...]


async def who(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
    peer = current_peer()
    return f"{peer.id}@{peer.address}".encode()


async def chat(
    request_iterator: Any, context: aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    yield str(current_peer().id).encode()


async def ask(request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
    """identify_peer on the call's own context, no interceptor in front."""
    try:
        return identify_peer(context).encode()
    except InvalidAddressError as exc:
        return f"invalid: {exc}".encode()


class Servers:
    """One server behind PeerIdentityInterceptor, one plain server using identify_peer."""

    def __init__(self, family: str, unix_dir: str) -> None:
        self.manager = InboundManager(1, with_nodes(NODES))
        self.guarded = aio.server(
            interceptors=[PeerIdentityInterceptor(self.manager, register_methods=[CHAT])]
        )
        self.guarded.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "t.Claims",
                    {
                        "Who": grpc.unary_unary_rpc_method_handler(who),
                        "Chat": grpc.stream_stream_rpc_method_handler(chat),
                    },
                ),
            )
        )
        self.guarded_target = bind(self.guarded, family, unix_dir).target
        self.plain = aio.server()
        self.plain.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "t.Plain", {"IdentifyPeer": grpc.unary_unary_rpc_method_handler(ask)}
                ),
            )
        )
        plain_dir = os.path.join(unix_dir, "plain")
        os.makedirs(plain_dir, exist_ok=True)
        self.plain_target = bind(self.plain, family, plain_dir).target

    async def who(self, metadata: Metadata) -> bytes:
        async with aio.insecure_channel(self.guarded_target) as channel:
            reply: bytes = await channel.unary_unary(WHO)(b"", metadata=metadata, timeout=5)
            return reply

    async def chat(self, metadata: Metadata) -> bytes:
        async with aio.insecure_channel(self.guarded_target) as channel:
            call = channel.stream_stream(CHAT)(metadata=metadata, timeout=5)
            reply: bytes = await call.read()
            call.cancel()
            return reply

    async def identify_peer(self, metadata: Metadata) -> str:
        async with aio.insecure_channel(self.plain_target) as channel:
            reply: bytes = await channel.unary_unary(ASK)(b"", metadata=metadata, timeout=5)
            return reply.decode()


async def start(family: str, unix_dir: str) -> Servers:
    servers = Servers(family, unix_dir)
    await servers.guarded.start()
    await servers.plain.start()
    return servers


@pytest.fixture(params=["ipv4", "ipv6", "unix"])
async def servers(request: pytest.FixtureRequest, unix_dir: str) -> AsyncIterator[Servers]:
    started = await start(request.param, unix_dir)
    yield started
    await started.guarded.stop(None)
    await started.plain.stop(None)


@pytest.fixture
async def ipv4_servers(unix_dir: str) -> AsyncIterator[Servers]:
    started = await start("ipv4", unix_dir)
    yield started
    await started.guarded.stop(None)
    await started.plain.stop(None)


async def test_malformed_hosts_are_refused_invalid_argument(ipv4_servers: Servers) -> None:
    for host in MALFORMED_HOSTS:
        claim = (("gorums-addr", f"{host}:9001"),)
        for call in (ipv4_servers.who, ipv4_servers.chat):
            with pytest.raises(aio.AioRpcError) as info:
                await call(claim)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, host
            assert host[:30] in (info.value.details() or ""), host
        answer = await ipv4_servers.identify_peer(claim)
        assert answer.startswith("invalid: gorums-addr") and host[:30] in answer, host
    assert ipv4_servers.manager.inbound_config().ids == ()


async def test_malformed_hosts_with_a_node_id_are_refused_too(ipv4_servers: Servers) -> None:
    for host in ("127.1", "0x7f000001", "unix localhost"):
        with pytest.raises(aio.AioRpcError) as info:
            await ipv4_servers.chat((("gorums-addr", f"{host}:9002"), ("gorums-node-id", "2")))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, host
    assert ipv4_servers.manager.inbound_config().ids == ()


async def test_localhost_claims_mean_loopback_on_every_family(servers: Servers) -> None:
    # Configured as localhost:9002: claimed as localhost, from 127.0.0.1, ::1 or a unix socket.
    assert await servers.who((("gorums-addr", "localhost:9002"),)) == b"2@localhost:9002"
    assert await servers.who((("gorums-addr", "LOCALHOST.:9002"),)) == b"2@localhost:9002"
    assert await servers.chat((("gorums-addr", "localhost:9002"), ("gorums-node-id", "2"))) == b"2"
    # Configured as 127.0.0.1:9001 or [::1]:9003: found by a localhost claim.
    assert await servers.who((("gorums-addr", "localhost:9001"),)) == b"1@127.0.0.1:9001"
    assert await servers.who((("gorums-addr", "localhost:9003"),)) == b"3@[::1]:9003"
    # Not configured: an external caller, as for any unknown address.
    assert await servers.who((("gorums-addr", "localhost:9999"),)) == b"0@localhost:9999"
    assert await servers.identify_peer((("gorums-addr", "localhost:9002"),)) == "127.0.0.1:9002"


async def test_literal_claims_find_a_node_configured_as_localhost(unix_dir: str) -> None:
    for family, literal in (("ipv4", "127.0.0.1:9002"), ("ipv6", "[::1]:9002")):
        started = await start(family, unix_dir)
        try:
            assert await started.who((("gorums-addr", literal),)) == b"2@localhost:9002"
            assert await started.chat((("gorums-addr", literal), ("gorums-node-id", "2"))) == b"2"
        finally:
            await started.guarded.stop(None)
            await started.plain.stop(None)


async def test_localhost_is_no_pass_for_another_host(ipv4_servers: Servers) -> None:
    # A localhost claim naming node 4 (at 192.0.2.4) disagrees with its ID; one that
    # names node 2 but comes with node 4's ID too.
    for claim in (
        (("gorums-addr", "localhost:9004"), ("gorums-node-id", "4")),
        (("gorums-addr", "localhost:9002"), ("gorums-node-id", "4")),
    ):
        with pytest.raises(aio.AioRpcError) as info:
            await ipv4_servers.who(claim)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
