"""Hostile input: arbitrary claims and metadata, and a NodeStream peer misbehaving."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc import aio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gorums_mw import (
    GORUMS_ADDR_KEY,
    ConfigurationError,
    HandlerRegistry,
    InboundManager,
    InvalidAddressError,
    Limits,
    PeerAddressMismatchError,
    add_node_stream_service,
    identify_peer,
    normalize_addr,
    with_node_list,
    with_nodes,
)
from gorums_mw._limits import SERVING_OVERHEAD
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.messages import SERVER_ID_BIT
from gorums_mw._wire import NODE_STREAM_PATH
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports
from tests import echo_pb2, echo_pb2_grpc
from tests.conftest import FakeContext

SAY = "echo.Echo.Say"
IDENTITY_ERRORS = (InvalidAddressError, PeerAddressMismatchError)

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(min_value=-5, max_value=70000)
claims = st.one_of(
    st.text(max_size=400),
    st.builds(lambda ip, port: f"{ip}:{port}", ipv4, ports),
    st.builds(lambda ip, port: f"[{ip}]:{port}", ipv6, ports),
    st.builds(lambda ip, port: f"{ip}:{port}", ipv6, ports),
    st.just("x" * 10_000),
)
peers = st.one_of(
    st.text(max_size=200),
    st.builds(lambda ip, port: f"ipv4:{ip}:{port}", ipv4, ports),
    st.builds(lambda ip, port: f"ipv6:%5B{ip}%5D:{port}", ipv6, ports),
    st.just("unix:"),
    st.just("unix:/tmp/s.sock"),
)
metadata = st.lists(
    st.tuples(st.sampled_from([GORUMS_ADDR_KEY, "other", "user-agent"]), claims), max_size=4
)


def canonical(ip_text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(ip_text)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(peer=peers, md=metadata)
def test_identify_peer_never_crashes_nor_accepts_a_foreign_ip(
    peer: str, md: list[tuple[str, str]]
) -> None:
    try:
        claimed = identify_peer(FakeContext(peer, md))
    except IDENTITY_ERRORS:
        return
    if not claimed:  # no claim, or no peer information to check one against
        assert not peer or all(key != GORUMS_ADDR_KEY for key, _ in md)
        return
    host = claimed.rpartition(":")[0].strip("[]")
    if peer.startswith("unix"):
        assert canonical(host).is_loopback
    else:
        real = peer.partition(":")[2].rpartition(":")[0].replace("%5B", "").replace("%5D", "")
        assert canonical(host) == canonical(real)


@settings(max_examples=300, deadline=None)
@given(addr=claims)
def test_normalize_addr_only_raises_invalid_address(addr: str) -> None:
    try:
        normalized = normalize_addr(addr)
    except InvalidAddressError:
        return
    assert normalize_addr(normalized) == normalized  # normalizing is idempotent


@settings(max_examples=200, deadline=None)
@given(
    nodes=st.dictionaries(
        st.integers(min_value=-2, max_value=2**33),
        st.one_of(claims.filter(lambda a: not any(c.isalpha() for c in a)), st.integers()),
        max_size=5,
    )
)
def test_options_only_raise_configuration_errors(nodes: dict[int, Any]) -> None:
    for build in (lambda: with_nodes(nodes), lambda: with_node_list(list(nodes.values()))):
        try:
            option = build()
        except ConfigurationError:
            continue
        assert all(0 < node_id < 2**32 for node_id in option.nodes)
        assert len(set(option.nodes.values())) == len(option.nodes)


class Blocking(echo_pb2_grpc.EchoServicer):
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def Say(self, request: Any, context: Any) -> Any:
        if request.number < 0:
            await self.release.wait()
        return echo_pb2.EchoReply(text=request.text)


@pytest.fixture
async def target() -> AsyncIterator[tuple[str, Blocking]]:
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    servicer = Blocking()
    handlers = HandlerRegistry()
    echo_pb2_grpc.add_EchoServicer_to_server(servicer, handlers)  # type: ignore[arg-type]
    # Room for 8 requests in service (payloads of 11..20 bytes), not 9.
    limits = Limits(max_message=16_384, stream_buffer=8 * (SERVING_OVERHEAD + 20))
    manager = InboundManager(1, with_nodes({1: address}), handlers=handlers, limits=limits)
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    add_node_stream_service(manager, server)
    server.add_insecure_port(address)
    await server.start()
    yield address, servicer
    servicer.release.set()
    await server.stop(None)


def open_stream(channel: aio.Channel) -> Any:
    return channel.stream_stream(
        NODE_STREAM_PATH,
        request_serializer=Message.SerializeToString,
        response_deserializer=Message.FromString,
    )()


def request(
    msg_id: int, *, method: str = SAY, payload: bytes | None = None, number: int = 0
) -> Message:
    if payload is None:
        payload = echo_pb2.EchoRequest(text=str(msg_id), number=number).SerializeToString()
    return Message(message_seq_no=msg_id, method=method, payload=payload)


async def roundtrip(stream: Any, message: Message) -> Message:
    await stream.write(message)
    reply = await asyncio.wait_for(stream.read(), 5)
    assert isinstance(reply, Message)
    return reply


async def test_garbage_unknown_and_reused_ids_get_errors_and_the_stream_survives(
    target: tuple[str, Blocking],
) -> None:
    address, _ = target
    async with aio.insecure_channel(address) as channel:
        stream = open_stream(channel)
        garbage = await roundtrip(stream, request(1, payload=b"\xff\xff\xff"))
        assert garbage.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        unknown = await roundtrip(stream, request(2, method="evil.Service.Nope"))
        assert unknown.status.code == grpc.StatusCode.UNIMPLEMENTED.value[0]
        no_method = await roundtrip(stream, request(3, method=""))
        assert no_method.status.code == grpc.StatusCode.UNIMPLEMENTED.value[0]
        # A "reply" to a call the server never made is ignored.
        await stream.write(Message(message_seq_no=SERVER_ID_BIT | 99, payload=b"x"))
        # The same ID twice: both are served, each answered under that ID.
        await stream.write(request(7))
        await stream.write(request(7))
        first, second = await stream.read(), await stream.read()
        assert first.message_seq_no == second.message_seq_no == 7
        assert first.status.code == second.status.code == 0
        ok = await roundtrip(stream, request(8))
        assert echo_pb2.EchoReply.FromString(ok.payload).text == "8"
        stream.cancel()


async def test_flood_beyond_the_buffer_is_refused_and_others_are_served(
    target: tuple[str, Blocking],
) -> None:
    address, servicer = target
    async with aio.insecure_channel(address) as flooder, aio.insecure_channel(address) as other:
        flood = open_stream(flooder)
        for msg_id in range(1, 41):  # 40 requests that block, against a buffer of 8
            await flood.write(request(msg_id, number=-1))
        refused = [await asyncio.wait_for(flood.read(), 5) for _ in range(32)]
        assert {r.status.code for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
        # Another peer is unaffected.
        calm = open_stream(other)
        reply = await roundtrip(calm, request(1))
        assert echo_pb2.EchoReply.FromString(reply.payload).text == "1"
        # Once released, the 8 in service are answered; the flooder's stream still works.
        servicer.release.set()
        answered = [await asyncio.wait_for(flood.read(), 5) for _ in range(8)]
        assert all(r.status.code == 0 for r in answered)
        again = await roundtrip(flood, request(99))
        assert again.status.code == 0
        flood.cancel()
        calm.cancel()


async def test_bytes_that_are_not_a_message_end_only_that_stream(
    target: tuple[str, Blocking],
) -> None:
    address, _ = target
    async with aio.insecure_channel(address) as channel:
        raw = channel.stream_stream(NODE_STREAM_PATH)()  # no serializer: raw bytes
        await raw.write(b"\x0a\xff\xff\xff\xff")  # a truncated, invalid Message
        stream = open_stream(channel)
        reply = await roundtrip(stream, request(1))
        assert reply.status.code == 0
        raw.cancel()
        stream.cancel()
