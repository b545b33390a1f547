"""Verified identity over mTLS: the client certificate must name the claimed IP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import InboundManager, System, current_peer, with_nodes
from gorums_mw._inbound.manager import wiring_of
from gorums_mw.interceptors import ClientIdentityInterceptor, PeerIdentityInterceptor
from gorums_mw.testing import free_ports
from tests import echo_pb2, echo_pb2_grpc
from tests.conftest import Spans
from tests.reliability.replica_proc import Echo
from tests.tls.certs import CertificateAuthority

CHAT = "/t.Tls/Chat"


async def who(request: bytes, context: Any) -> bytes:
    return str(current_peer().id).encode()


async def chat(request_iterator: Any, context: Any) -> AsyncIterator[bytes]:
    async for message in request_iterator:
        yield message


HANDLERS = grpc.method_handlers_generic_handler(
    "t.Tls",
    {
        "Who": grpc.unary_unary_rpc_method_handler(who),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    },
)


class Fixture:
    def __init__(self, spans: Spans) -> None:
        self.ca = CertificateAuthority()
        (port,) = free_ports(1)
        self.address = f"127.0.0.1:{port}"
        self.manager = InboundManager(
            1,
            with_nodes({1: self.address, 2: "127.0.0.1:9002"}),
            require_certificate=True,
            tracer_provider=spans.provider,
        )
        self.server = aio.server(
            interceptors=[PeerIdentityInterceptor(self.manager, register_methods=[CHAT])]
        )
        self.server.add_generic_rpc_handlers((HANDLERS,))
        server_pair = self.ca.issue("server", ["127.0.0.1"])
        credentials = grpc.ssl_server_credentials(
            [(server_pair.key, server_pair.cert)],
            root_certificates=self.ca.pem,
            require_client_auth=True,
        )
        self.server.add_secure_port(self.address, credentials)

    def channel(self, client_ips: list[str]) -> aio.Channel:
        pair = self.ca.issue("replica 2", client_ips)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca.pem, private_key=pair.key, certificate_chain=pair.cert
        )
        return aio.secure_channel(
            self.address, credentials, interceptors=ClientIdentityInterceptor("127.0.0.1:9002")
        )


@pytest.fixture
async def mtls(spans: Spans) -> AsyncIterator[Fixture]:
    fixture = Fixture(spans)
    await fixture.server.start()
    yield fixture
    await fixture.server.stop(None)


async def test_certificate_naming_the_claimed_ip_is_accepted(mtls: Fixture) -> None:
    async with mtls.channel(["127.0.0.1", "::1"]) as channel:
        assert await channel.unary_unary("/t.Tls/Who")(b"", timeout=5) == b"2"
        call = channel.stream_stream(CHAT)()
        await call.write(b"hi")
        assert await call.read() == b"hi"
        config = await mtls.manager.wait_for_config(lambda c: c.ids == (2,), timeout=5)
        assert config.ids == (2,)
        call.cancel()


async def test_certificate_for_another_ip_is_refused(mtls: Fixture, spans: Spans) -> None:
    async with mtls.channel(["127.0.0.9"]) as channel:
        with pytest.raises(aio.AioRpcError) as info:
            await channel.unary_unary("/t.Tls/Who")(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "127.0.0.9" in (info.value.details() or "")
        call = channel.stream_stream(CHAT)()
        with pytest.raises(aio.AioRpcError) as info:
            await call.read()
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert mtls.manager.inbound_config().ids == ()
    reject = spans.named("gorums.peer.reject")[0]
    assert "certificate" in str(reject.attributes["gorums.reason"])


async def test_no_certificate_is_refused_when_certificates_are_required(spans: Spans) -> None:
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    manager = InboundManager(
        1, with_nodes({1: address, 2: "127.0.0.1:9002"}), require_certificate=True
    )
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    server.add_generic_rpc_handlers((HANDLERS,))
    server.add_insecure_port(address)
    await server.start()
    try:
        interceptors = ClientIdentityInterceptor("127.0.0.1:9002")
        async with aio.insecure_channel(address, interceptors=interceptors) as channel:
            with pytest.raises(aio.AioRpcError) as info:
                await channel.unary_unary("/t.Tls/Who")(b"", timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "no client certificate" in (info.value.details() or "")
    finally:
        await server.stop(None)


async def test_symmetric_replicas_over_mtls() -> None:
    ca = CertificateAuthority()
    ports = free_ports(3)
    nodes = with_nodes({i + 1: f"127.0.0.1:{port}" for i, port in enumerate(ports)})
    systems = []
    for node_id in nodes.nodes:
        pair = ca.issue(f"replica {node_id}", ["127.0.0.1"])
        system = System(
            node_id,
            nodes,
            server_credentials=grpc.ssl_server_credentials(
                [(pair.key, pair.cert)], root_certificates=ca.pem, require_client_auth=True
            ),
            channel_credentials=grpc.ssl_channel_credentials(
                root_certificates=ca.pem, private_key=pair.key, certificate_chain=pair.cert
            ),
            require_certificate=True,
        )
        system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, Echo(node_id))
        systems.append(system)
    try:
        for system in systems:
            await system.start()
        for system in systems:
            await system.wait_for_config(lambda c: c.ids == (1, 2, 3), timeout=20)
        replies = (
            await systems[0]
            .config()
            .quorum_call(
                "echo.Echo.Say", echo_pb2.EchoRequest(), echo_pb2.EchoReply, quorum=3, timeout=5
            )
        )
        assert {node_id: reply.number for node_id, reply in replies.items()} == {1: 1, 2: 1, 3: 1}
    finally:
        for system in systems:
            await system.stop(None)


@pytest.mark.parametrize(("certified", "accepted"), [("localhost", True), ("other.test", False)])
async def test_a_node_configured_by_name_is_vouched_for_by_a_dns_san(
    certified: str, accepted: bool
) -> None:
    """What cert-manager issues in a cluster: the pod's stable name, not its IP."""
    ca = CertificateAuthority()
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    manager = InboundManager(
        1, with_nodes({1: address, 2: "localhost:9002"}), require_certificate=True
    )
    await wiring_of(manager).address_book.resolve_all()
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    server.add_generic_rpc_handlers((HANDLERS,))
    pair = ca.issue("server", ["127.0.0.1"])
    server.add_secure_port(
        address,
        grpc.ssl_server_credentials(
            [(pair.key, pair.cert)], root_certificates=ca.pem, require_client_auth=True
        ),
    )
    await server.start()
    client = ca.issue("replica 2", [], dns=(certified,))  # no IP SAN at all
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.pem, private_key=client.key, certificate_chain=client.cert
    )
    claim = (("gorums-addr", "localhost:9002"), ("gorums-node-id", "2"))
    try:
        async with aio.secure_channel(address, credentials) as channel:
            who = channel.unary_unary("/t.Tls/Who")
            if accepted:
                assert await who(b"", metadata=claim, timeout=5) == b"2"
            else:
                with pytest.raises(aio.AioRpcError) as info:
                    await who(b"", metadata=claim, timeout=5)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "other.test" in (info.value.details() or "")
    finally:
        await server.stop(None)
