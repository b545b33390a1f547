"""HandlerRegistry: NodeStream requests answered by ordinary grpc servicers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from opentelemetry import propagate, trace

from gorums_mw._identity.peer import UNKNOWN_PEER, Peer, current_peer
from gorums_mw._proto.stream_pb2 import Message, MetadataEntry
from gorums_mw._stream.context import NodeStreamContext
from gorums_mw._stream.registry import HandlerRegistry
from tests import calltypes_pb2, calltypes_pb2_grpc, echo_pb2, echo_pb2_grpc
from tests.conftest import Spans

PEER = Peer(2, "127.0.0.1:9002", "ipv4:127.0.0.1:50002")
SAY = "echo.Echo.Say"
STREAM = "echo.Echo.Stream"
Say = Callable[[echo_pb2.EchoRequest, NodeStreamContext], Any]


class EchoServicer(echo_pb2_grpc.EchoServicer):
    """Say runs the function given; without one it echoes, adding the caller's ID."""

    def __init__(self, say: Say | None = None) -> None:
        self.say = say

    async def Say(self, request, context):
        if self.say is not None:
            return await self.say(request, context)
        return echo_pb2.EchoReply(
            text=request.text, number=request.number, node_id=current_peer().id
        )

    async def Stream(self, request, context) -> AsyncIterator[echo_pb2.EchoReply]:
        yield echo_pb2.EchoReply(text=request.text)


def registry_for(servicer: echo_pb2_grpc.EchoServicer) -> HandlerRegistry:
    registry = HandlerRegistry()
    echo_pb2_grpc.add_EchoServicer_to_server(servicer, registry)  # type: ignore[arg-type]
    return registry


def request(
    text: str = "hi",
    *,
    number: int = 3,
    seq: int = 7,
    method: str = SAY,
    entries: Iterable[tuple[str, str]] = (),
    payload: bytes | None = None,
) -> Message:
    if payload is None:
        payload = echo_pb2.EchoRequest(text=text, number=number).SerializeToString()
    return Message(
        message_seq_no=seq,
        method=method,
        entry=[MetadataEntry(key=k, value=v) for k, v in entries],
        payload=payload,
    )


async def call(say: Say, req: Message | None = None) -> Message:
    reply = await handle(registry_for(EchoServicer(say)), req or request())
    assert reply is not None
    return reply


async def stream_replies(
    registry: HandlerRegistry, req: Message, *, one_way: bool = False
) -> list[Message]:
    """Every message ``registry`` sends for ``req``; with ``one_way`` it is given no send."""
    sent: list[Message] = []

    def send(message: Message) -> bool:
        sent.append(message)
        return True

    await registry.handle(req, PEER, None if one_way else send)
    return sent


async def handle(
    registry: HandlerRegistry, req: Message, *, one_way: bool = False
) -> Message | None:
    """The reply ``registry`` sends for a unary request (None if it sends none)."""
    sent = await stream_replies(registry, req, one_way=one_way)
    assert len(sent) <= 1
    return sent[0] if sent else None


def assert_status(reply: Message, code: grpc.StatusCode, message: str) -> None:
    assert (reply.status.code, reply.status.message) == (code.value[0], message)
    assert reply.payload == b""
    assert (reply.message_seq_no, reply.method) == (7, SAY)


async def test_reply_round_trip() -> None:
    reply = await handle(registry_for(EchoServicer()), request("hello"))

    assert reply is not None
    assert (reply.message_seq_no, reply.method) == (7, SAY)
    assert not reply.HasField("status")
    assert echo_pb2.EchoReply.FromString(reply.payload) == echo_pb2.EchoReply(
        text="hello", number=3, node_id=2
    )


def test_methods_and_repr() -> None:
    registry = registry_for(EchoServicer())

    assert registry.methods() == frozenset(
        {"echo.Echo.Say", "echo.Echo.Stream", "echo.Echo.Collect"}
    )
    assert repr(registry) == (
        "<HandlerRegistry methods=['echo.Echo.Collect', 'echo.Echo.Say', 'echo.Echo.Stream']"
        " generic=1>"
    )


@pytest.mark.parametrize("method", ["echo.Echo.Shout", "other.Echo.Say", "Say", ""])
async def test_unknown_method_is_unimplemented(method: str) -> None:
    reply = await handle(registry_for(EchoServicer()), request(method=method))

    assert reply is not None
    assert reply.status.code == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert reply.status.message == f"unknown method {method}"
    assert reply.method == method


async def test_client_streaming_method_is_unimplemented() -> None:
    reply = await handle(registry_for(EchoServicer()), request(method="echo.Echo.Collect"))

    assert reply is not None
    assert reply.status.code == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert reply.status.message == (
        "echo.Echo.Collect is client-streaming; NodeStream calls unary and server-streaming methods"
    )


class Streams(echo_pb2_grpc.EchoServicer):
    """Server-streaming handlers of each kind grpc.aio runs."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def Stream(self, request, context):  # type: ignore[override]
        replies = [echo_pb2.EchoReply(text=request.text, number=i) for i in range(request.number)]
        if self.kind == "async generator":

            async def each() -> AsyncIterator[echo_pb2.EchoReply]:
                for reply in replies:
                    yield reply
                if request.text == "fail":
                    raise ValueError("after the replies")

            return each()
        if self.kind == "writer":

            async def write() -> None:
                for reply in replies:
                    await context.write(reply)

            return write()
        return iter(replies)  # a plain generator, stepped on a thread


@pytest.mark.parametrize("kind", ["async generator", "writer", "generator"])
async def test_server_streaming_replies_travel_under_the_request_id(kind: str) -> None:
    registry = HandlerRegistry()
    echo_pb2_grpc.add_EchoServicer_to_server(Streams(kind), registry)  # type: ignore[arg-type]
    sent = await stream_replies(registry, request("r", method=STREAM, number=3))

    assert [(m.message_seq_no, m.method, m.HasField("status")) for m in sent] == [
        (7, STREAM, False)
    ] * 3
    numbers = [echo_pb2.EchoReply.FromString(m.payload).number for m in sent]
    assert numbers == [0, 1, 2]  # nothing after the last reply marks the end (as Go Gorums)


async def test_server_streaming_failure_is_the_last_reply() -> None:
    registry = HandlerRegistry()
    echo_pb2_grpc.add_EchoServicer_to_server(Streams("async generator"), registry)  # type: ignore[arg-type]
    sent = await stream_replies(registry, request("fail", method=STREAM, number=2))

    assert len(sent) == 3 and not sent[1].HasField("status")
    assert sent[2].status.code == grpc.StatusCode.UNKNOWN.value[0]
    assert sent[2].status.message == "ValueError: after the replies"


async def test_server_streaming_stops_when_the_caller_does_not_read() -> None:
    registry = HandlerRegistry()
    echo_pb2_grpc.add_EchoServicer_to_server(Streams("async generator"), registry)  # type: ignore[arg-type]
    sent: list[Message] = []

    def send(message: Message) -> bool:
        sent.append(message)
        return len(sent) < 2  # the stream's buffer is full after two

    await registry.handle(request("r", method=STREAM, number=100), PEER, send)
    assert len(sent) == 3
    assert sent[2].status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


async def test_garbage_payload_is_invalid_argument() -> None:
    reply = await handle(registry_for(EchoServicer()), request(payload=b"\xff\xff\xff"))

    assert reply is not None
    assert reply.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert reply.status.message.startswith("cannot parse the echo.Echo.Say request: DecodeError")


async def test_exception_is_unknown() -> None:
    async def say(req, ctx):
        raise ValueError("bad number")

    assert_status(await call(say), grpc.StatusCode.UNKNOWN, "ValueError: bad number")


async def test_exception_after_set_code_keeps_the_code() -> None:
    # The generated base servicer does this for methods not implemented.
    servicer = echo_pb2_grpc.EchoServicer()  # type: ignore[abstract]
    reply = await handle(registry_for(servicer), request())

    assert reply is not None
    assert_status(
        reply, grpc.StatusCode.UNIMPLEMENTED, "NotImplementedError: Method not implemented!"
    )


async def test_abort() -> None:
    async def say(req, ctx):
        await ctx.abort(grpc.StatusCode.NOT_FOUND, "x")

    assert_status(await call(say), grpc.StatusCode.NOT_FOUND, "x")


async def test_abort_stands_when_the_handler_catches_it() -> None:
    async def say(req, ctx):
        ctx.set_details("earlier")
        with contextlib.suppress(Exception):
            await ctx.abort(grpc.StatusCode.NOT_FOUND)
        return echo_pb2.EchoReply()

    assert_status(await call(say), grpc.StatusCode.NOT_FOUND, "earlier")


async def test_abort_with_ok_is_unknown() -> None:
    async def say(req, ctx):
        await ctx.abort(grpc.StatusCode.OK, "fine?")

    assert_status(await call(say), grpc.StatusCode.UNKNOWN, "fine?")


async def test_set_code_and_details() -> None:
    async def say(req, ctx):
        ctx.set_code(grpc.StatusCode.FAILED_PRECONDITION)
        ctx.set_details("not yet")
        assert (ctx.code(), ctx.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "not yet")
        return echo_pb2.EchoReply(text="ignored")

    assert_status(await call(say), grpc.StatusCode.FAILED_PRECONDITION, "not yet")


async def test_set_code_ok_replies_normally() -> None:
    async def say(req, ctx):
        assert (ctx.code(), ctx.details()) == (None, "")
        ctx.set_code(grpc.StatusCode.OK)
        return echo_pb2.EchoReply(text="fine")

    reply = await call(say)
    assert echo_pb2.EchoReply.FromString(reply.payload).text == "fine"


async def test_bad_reply_is_internal() -> None:
    async def say(req, ctx):
        return None

    reply = await call(say)
    assert reply.status.code == grpc.StatusCode.INTERNAL.value[0]
    assert reply.status.message.startswith("cannot serialize the echo.Echo.Say reply: TypeError")


async def test_context_shows_entries_and_peer() -> None:
    seen: dict[str, Any] = {}

    async def say(req, ctx):
        seen.update(
            metadata=ctx.invocation_metadata(),
            peer=ctx.peer(),
            current=current_peer(),
            time_remaining=ctx.time_remaining(),
            auth=ctx.auth_context(),
            state=(ctx.cancelled(), ctx.done()),
        )
        await ctx.send_initial_metadata((("a", "b"),))
        ctx.set_trailing_metadata((("t", "1"),))
        ctx.add_done_callback(lambda _: None)
        return echo_pb2.EchoReply()

    entries = [("k", "v"), ("k2", "v2"), ("k", "again")]
    await call(say, request(entries=entries))

    assert seen == {
        "metadata": tuple(entries),
        "peer": "ipv4:127.0.0.1:50002",
        "current": PEER,
        "time_remaining": None,
        "auth": {},
        "state": (False, False),
    }
    assert current_peer() == UNKNOWN_PEER


async def test_sync_handler_runs_in_a_thread_and_sees_the_peer() -> None:
    class SyncEcho(EchoServicer):
        def Say(self, request, context):
            assert threading.current_thread() is not threading.main_thread()
            return echo_pb2.EchoReply(text=request.text, node_id=current_peer().id)

    reply = await handle(registry_for(SyncEcho()), request("sync"))

    assert reply is not None
    assert echo_pb2.EchoReply.FromString(reply.payload) == echo_pb2.EchoReply(
        text="sync", node_id=2
    )


async def test_sync_handler_exception_is_unknown() -> None:
    class SyncEcho(EchoServicer):
        def Say(self, request, context):
            raise KeyError("k")

    reply = await handle(registry_for(SyncEcho()), request())

    assert reply is not None
    assert_status(reply, grpc.StatusCode.UNKNOWN, "KeyError: 'k'")


async def test_one_way_runs_the_handler_and_returns_none() -> None:
    ran = asyncio.Event()

    async def say(req, ctx):
        assert req.text == "fire"
        ran.set()
        return echo_pb2.EchoReply()

    registry = registry_for(EchoServicer(say))

    assert await handle(registry, request("fire"), one_way=True) is None
    assert ran.is_set()


async def test_one_way_errors_are_logged_not_returned(caplog: pytest.LogCaptureFixture) -> None:
    async def say(req, ctx):
        raise ValueError("boom")

    registry = registry_for(EchoServicer(say))
    with caplog.at_level(logging.DEBUG, logger="gorums_mw"):
        assert await handle(registry, request(), one_way=True) is None
        assert await handle(registry, request(method="echo.Echo.Nope"), one_way=True) is None

    assert [r.getMessage() for r in caplog.records] == [
        "one-way echo.Echo.Say from node 2 failed: UNKNOWN: ValueError: boom",
        "one-way echo.Echo.Nope from node 2 failed: UNIMPLEMENTED: unknown method echo.Echo.Nope",
    ]


async def test_cancellation_propagates() -> None:
    started = asyncio.Event()

    async def say(req, ctx):
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(handle(registry_for(EchoServicer(say)), request()))
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_handler_span_continues_the_callers_trace(spans: Spans) -> None:
    tracer = spans.provider.get_tracer("test")

    async def say(req, ctx):
        with tracer.start_as_current_span("child"):
            return echo_pb2.EchoReply()

    carrier: dict[str, str] = {}
    with tracer.start_as_current_span("parent") as parent:
        propagate.inject(carrier)
    assert "traceparent" in carrier

    await call(say, request(entries=carrier.items()))

    [child] = spans.named("child")
    assert child.context is not None and child.parent is not None
    assert child.context.trace_id == parent.get_span_context().trace_id
    assert child.parent.span_id == parent.get_span_context().span_id
    assert not trace.get_current_span().get_span_context().is_valid


async def test_generic_handler_is_resolved_once() -> None:
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(
            EchoServicer().Say,
            request_deserializer=echo_pb2.EchoRequest.FromString,
            response_serializer=echo_pb2.EchoReply.SerializeToString,
        )
    }
    inner = grpc.method_handlers_generic_handler("echo.Echo", handlers)
    asked: list[str] = []

    class Counting(grpc.GenericRpcHandler):  # type: ignore[type-arg]
        def service(self, handler_call_details):
            asked.append(handler_call_details.method)
            return inner.service(handler_call_details)

    registry = HandlerRegistry()
    registry.add_generic_rpc_handlers([Counting()])
    replies = [await handle(registry, request(str(i))) for i in range(3)]

    assert [echo_pb2.EchoReply.FromString(r.payload).text for r in replies if r] == ["0", "1", "2"]
    assert asked == ["/echo.Echo/Say"]
    assert registry.methods() == frozenset()


class Published(calltypes_pb2_grpc.CallsServicer):
    def __init__(self) -> None:
        self.published: list[str] = []

    async def Publish(self, request: Any, context: Any) -> Any:
        self.published.append(request.key)
        return empty_pb2.Empty()

    async def Read(self, request: Any, context: Any) -> Any:
        return calltypes_pb2.Entry(key=request.key)


async def test_methods_declared_one_way_are_never_answered() -> None:
    """Go Gorums sends multicasts unmarked, with ordinary IDs: the option decides."""
    servicer = Published()
    registry = HandlerRegistry()
    calltypes_pb2_grpc.add_CallsServicer_to_server(servicer, registry)  # type: ignore[arg-type]
    publish = Message(
        message_seq_no=11,
        method="calltypes.Calls.Publish",
        payload=calltypes_pb2.Entry(key="p").SerializeToString(),
    )
    assert await stream_replies(registry, publish) == []  # (gorums.multicast): no reply
    assert servicer.published == ["p"]
    read = Message(
        message_seq_no=12,
        method="calltypes.Calls.Read",
        payload=calltypes_pb2.Key(key="r").SerializeToString(),
    )
    (reply,) = await stream_replies(registry, read)  # (gorums.quorumcall): answered
    assert calltypes_pb2.Entry.FromString(reply.payload).key == "r"
