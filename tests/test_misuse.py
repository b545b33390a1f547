"""Every user mistake fails at once, with a message that names the value and the fix."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import threading
import time
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc import aio

from gorums_mw import (
    Backoff,
    Configuration,
    ConfigurationError,
    InboundManager,
    Keepalive,
    Limits,
    NameResolution,
    OutboundManager,
    QuorumCallError,
    System,
    with_nodes,
)
from gorums_mw.interceptors import PeerIdentityInterceptor, replicas_only, with_peer
from gorums_mw.testing import LocalReplicas, free_ports
from tests import echo_pb2, echo_pb2_grpc
from tests._echo import setup

SAY = "echo.Echo.Say"
NODES = with_nodes({1: "127.0.0.1:9001", 2: "127.0.0.1:9002", 3: "127.0.0.1:9003"})


# --- settings and construction ------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Keepalive(interval=math.nan), "Keepalive.interval .* got nan"),
        (lambda: Keepalive(timeout=math.inf), "Keepalive.timeout .* got inf"),
        (lambda: Keepalive(interval=0), "Keepalive.interval .* got 0"),
        (lambda: Backoff(multiplier=math.nan), "Backoff.multiplier .* got nan"),
        (lambda: Backoff(initial=-1), "Backoff.initial .* got -1"),
        (lambda: Backoff(jitter=1.5), "Backoff.jitter .* got 1.5"),
        (lambda: Limits(stream_buffer=0), "Limits.stream_buffer .* got 0"),
        (lambda: Limits(max_message=-1), "Limits.max_message .* got -1"),
        (lambda: Limits(max_message=10, stream_buffer=5), "must hold one message"),
        (lambda: NameResolution(ttl=math.nan), "NameResolution.ttl .* got nan"),
    ],
)
def test_settings_refuse_bad_values_at_construction(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_components_refuse_bad_settings_at_construction() -> None:
    with pytest.raises(TypeError, match="limits must be a Limits, got 0"):
        OutboundManager(NODES, limits=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keepalive must be a Keepalive"):
        System(1, NODES, keepalive=5)  # type: ignore[arg-type]
    for my_id in (5, 0):
        with pytest.raises(ConfigurationError, match=f"{my_id}"):
            System(my_id, NODES)
    with pytest.raises(ConfigurationError, match="my_id 7 is not one of the nodes"):
        InboundManager(7, NODES)
    with pytest.raises(ConfigurationError, match="client peer"):
        OutboundManager(NODES, my_addr="127.0.0.1:1", client_peer=True)
    with pytest.raises(ConfigurationError, match="my_id needs my_addr"):
        OutboundManager(NODES, my_id=1)


# --- lifecycle ------------------------------------------------------------------------


async def test_one_lifecycle_shape() -> None:
    dialer = OutboundManager(NODES)
    await dialer.stop()  # before start: nothing to do
    with pytest.raises(RuntimeError, match="was stopped; create a new one"):
        await dialer.start()
    async with OutboundManager(NODES) as running:
        with pytest.raises(RuntimeError, match="already started"):
            await running.start()
    await running.stop()  # idempotent
    system = System(1, with_nodes({1: f"127.0.0.1:{free_ports(1)[0]}"}))
    with pytest.raises(RuntimeError, match="System 1 was never started"):
        await system.wait_for_config(lambda c: True, timeout=1)
    async with system:
        assert (await system.wait_for_config(lambda c: len(c) == 1, timeout=1)).ids == (1,)
    await system.stop()


async def test_a_second_replica_cannot_share_a_port() -> None:
    async with LocalReplicas(1, setup) as replicas:
        twin = System(1, replicas.nodes)
        with pytest.raises(RuntimeError, match=r"could not listen on 127\.0\.0\.1:"):
            await twin.start()
        await twin.stop()
    (port,) = free_ports(1)
    with socket.create_server(("127.0.0.1", port)):  # another process's listener
        system = System(1, with_nodes({1: f"127.0.0.1:{port}"}))
        with pytest.raises(RuntimeError, match="another process"):
            await system.start()


def test_a_synchronous_server_refuses_the_interceptor_at_the_first_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = InboundManager(1, NODES)
    server = grpc.server(
        futures.ThreadPoolExecutor(2), interceptors=[PeerIdentityInterceptor(manager)]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            start = time.monotonic()
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary("/echo.Echo/Say")(b"", timeout=10)
            assert time.monotonic() - start < 2  # at once, not at the deadline
            assert info.value.code() == grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    finally:
        server.stop(None)
    assert "works with grpc.aio servers only" in caplog.text


# --- calls ---------------------------------------------------------------------------


async def test_calls_from_another_event_loop_raise_at_once() -> None:
    async with LocalReplicas(2, setup) as replicas:
        await replicas.wait_full()
        config = replicas[1].config()
        request = echo_pb2.EchoRequest(text="x")
        errors: list[BaseException] = []

        async def elsewhere() -> None:
            calls = [
                config.node(2).rpc(SAY, request, echo_pb2.EchoReply, timeout=4),
                config.quorum_call(SAY, request, echo_pb2.EchoReply, timeout=4),
                config.multicast(SAY, request),
                config.node(1).rpc(SAY, request, echo_pb2.EchoReply, timeout=4),
            ]
            for call in calls:
                try:
                    await call
                except BaseException as exc:
                    errors.append(exc)

        start = time.monotonic()
        thread = threading.Thread(target=asyncio.run, args=(elsewhere(),))
        thread.start()
        await asyncio.to_thread(thread.join, 10)
        assert time.monotonic() - start < 2
        assert len(errors) == 4
        assert all(isinstance(e, RuntimeError) for e in errors), errors
        assert all("runs on another event loop" in str(e) for e in errors)


async def test_call_mistakes_are_caught_locally() -> None:
    async with LocalReplicas(2, setup) as replicas:
        await replicas.wait_full()
        config = replicas[1].config()
        request = echo_pb2.EchoRequest(text="path form")
        reply = await config.node(2).rpc("/echo.Echo/Say", request, echo_pb2.EchoReply, timeout=5)
        assert reply.text == "path form"  # grpc's path form is accepted
        with pytest.raises(ValueError, match="not a protobuf full method name"):
            await config.node(2).rpc("echo/Say", request, echo_pb2.EchoReply)
        with pytest.raises(TypeError, match=r"returns echo\.EchoReply, not echo\.EchoRequest"):
            await config.node(2).rpc(SAY, request, echo_pb2.EchoRequest)
        with pytest.raises(TypeError, match="server-streaming: call it with correctable"):
            await config.quorum_call("echo.Echo.Stream", request, echo_pb2.EchoReply)
        with pytest.raises(KeyError, match=r"node 7 is not in this configuration \(IDs \[1, 2\]\)"):
            config.node(7)
        with pytest.raises(
            QuorumCallError, match=r"needs 1 replica \(a majority of its nodes\), and this .* has 0"
        ):
            await Configuration().quorum_call(SAY, request, echo_pb2.EchoReply)
        with pytest.raises(
            TimeoutError,
            match=r"waited 0.1 s for the condition .*<lambda>.*"
            r"configuration was <Configuration ids=\[1, 2\]>",
        ):
            await replicas[1].wait_for_config(lambda c: len(c) == 5, timeout=0.1)


class Guarded(echo_pb2_grpc.EchoServicer):
    @replicas_only
    async def Say(self, request: Any, context: Any) -> echo_pb2.EchoReply:
        return echo_pb2.EchoReply()

    @with_peer
    async def Stream(self, request: Any, context: Any, *, peer: Any) -> Any:
        yield echo_pb2.EchoReply()


async def test_decorators_without_the_interceptor_say_so(caplog: pytest.LogCaptureFixture) -> None:
    server = aio.server()  # no PeerIdentityInterceptor
    echo_pb2_grpc.add_EchoServicer_to_server(Guarded(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            with caplog.at_level(logging.ERROR):
                with pytest.raises(aio.AioRpcError) as info:
                    await stub.Say(echo_pb2.EchoRequest(), timeout=5)
                assert info.value.code() == grpc.StatusCode.UNKNOWN
                with pytest.raises(aio.AioRpcError):
                    async for _ in stub.Stream(echo_pb2.EchoRequest(), timeout=5):
                        pass
    finally:
        await server.stop(None)
    assert "replicas_only: no interceptor identified this call" in caplog.text
    assert "with_peer: no interceptor identified this call" in caplog.text
