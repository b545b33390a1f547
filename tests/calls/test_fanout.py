"""The call engine over a fake channel: deadlines, late replies, node errors, interceptors,
an early end, unread replies. (tests/stream covers the same paths on real streams.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from gorums_mw import CallError, CallInfo, Configuration, Node, NodeReply, QuorumCallError
from gorums_mw._calls import fanout as fanout_module
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.channel import Entries, ReplySink
from tests import echo_pb2

SAY = "echo.Echo.Say"
STREAM = "echo.Echo.Stream"
Request = echo_pb2.EchoRequest
Reply = echo_pb2.EchoReply


@dataclass
class Sent:
    """One request a fake channel was handed."""

    sink: ReplySink
    slot: int
    payload: bytes
    streaming: bool
    ticket: int


@dataclass
class FakeChannel:
    """A channel whose test decides when, and with what, each request is answered."""

    closed: bool = False
    waits: bool = False
    """Requests wait for room (so ``withdraw`` takes them back)."""
    refuse: CallError | None = None
    sent: list[Sent] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)
    casts: list[bytes] = field(default_factory=list)

    def request(
        self,
        method: str,
        payload: bytes,
        entries: Entries,
        sink: ReplySink,
        slot: int,
        *,
        streaming: bool = False,
    ) -> int:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(Sent(sink, slot, payload, streaming, len(self.sent) + 1))
        return len(self.sent)

    def forget(self, ticket: int) -> None:
        self.forgotten.append(ticket)

    def withdraw(self, ticket: int) -> bool:
        if self.waits:
            self.withdrawn.append(ticket)
        return self.waits

    def cast(self, method: str, payload: bytes, entries: Entries) -> bool:
        self.casts.append(payload)
        return not self.waits

    def reply(self, text: str, *, index: int = -1) -> None:
        """Answer a request (the last one by default) with ``Reply(text=text)``."""
        sent = self.sent[index]
        payload = Reply(text=text).SerializeToString()
        sent.sink.deliver(sent.slot, Message(message_seq_no=sent.ticket, payload=payload))

    def reply_status(self, code: grpc.StatusCode, details: str) -> None:
        sent = self.sent[-1]
        message = Message(message_seq_no=sent.ticket)
        message.status.code, message.status.message = code.value[0], details
        sent.sink.deliver(sent.slot, message)

    def end(self) -> None:
        """The stream ends: every request still pending fails ``UNAVAILABLE``."""
        for sent in self.sent:
            sent.sink.fail(sent.slot, CallError(grpc.StatusCode.UNAVAILABLE, "ended"))


def nodes(count: int) -> tuple[Configuration, dict[int, FakeChannel]]:
    channels = {i: FakeChannel() for i in range(1, count + 1)}
    members = []
    for node_id, channel in channels.items():
        node = Node(node_id, f"127.0.0.1:{node_id}")
        node.attach(channel)
        members.append(node)
    return Configuration(members), channels


async def settle() -> None:
    """Let the call under test run up to its next wait."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_quorum_call_returns_at_the_quorum_and_a_late_reply_still_counts() -> None:
    config, channels = nodes(3)
    call = asyncio.create_task(config.quorum_call(SAY, Request(text="q"), Reply, timeout=5))
    await settle()
    assert all(len(c.sent) == 1 for c in channels.values())
    channels[1].reply("a")
    channels[2].reply("b")
    replies = await asyncio.wait_for(call, 1)
    assert {k: v.text for k, v in replies.items()} == {1: "a", 2: "b"}
    assert config.node(3).latency is None
    channels[3].reply("late")  # after the decision: no answer, but a latency
    assert config.node(3).latency is not None
    assert channels[3].forgotten == []  # answered, so nothing to give up


async def test_the_deadline_fails_silent_nodes_and_gives_up_their_requests() -> None:
    config, channels = nodes(3)
    channels[1].refuse = CallError(grpc.StatusCode.UNAVAILABLE, "node is not connected", 1)
    call = config.quorum_call(SAY, Request(), Reply, quorum=2, timeout=0.05)
    with pytest.raises(QuorumCallError) as failure:
        await asyncio.wait_for(call, 2)
    errors = failure.value.errors
    assert errors[1].code == grpc.StatusCode.UNAVAILABLE
    assert errors[2].code == errors[3].code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert failure.value.code == grpc.StatusCode.UNAVAILABLE  # the nodes failed differently
    assert channels[2].forgotten == [1] and channels[3].forgotten == [1]
    assert isinstance(config.node(2).last_error, CallError)


async def test_a_hopeless_quorum_fails_without_waiting_for_the_deadline() -> None:
    config, channels = nodes(3)
    call = asyncio.create_task(config.quorum_call(SAY, Request(), Reply, quorum=3, timeout=60))
    await settle()
    channels[2].reply_status(grpc.StatusCode.FAILED_PRECONDITION, "no")
    with pytest.raises(QuorumCallError) as failure:
        await asyncio.wait_for(call, 1)
    assert failure.value.errors[2].details == "no"
    assert failure.value.code == grpc.StatusCode.FAILED_PRECONDITION


async def test_requests_still_waiting_for_room_are_withdrawn_at_the_end() -> None:
    config, channels = nodes(3)
    channels[3].waits = True
    call = asyncio.create_task(config.quorum_call(SAY, Request(), Reply, quorum=2, timeout=60))
    await settle()
    channels[1].reply("a")
    channels[2].reply("b")
    await asyncio.wait_for(call, 1)
    assert channels[3].withdrawn == [1]  # never sent: no late reply to wait for


async def test_interceptors_give_each_node_its_own_request_and_can_end_early() -> None:
    config, channels = nodes(3)

    async def shard(
        call: CallInfo[Any], replies: AsyncIterator[NodeReply[Any]]
    ) -> AsyncIterator[NodeReply[Any]]:
        call.map_request(lambda request, node: Request(text=f"{request.text}{node.id}"))
        async for answer in replies:
            yield answer
            return  # the first answer is enough

    call = asyncio.create_task(
        config.quorum_call(SAY, Request(text="k"), Reply, quorum=1, interceptors=[shard], timeout=9)
    )
    await settle()
    assert [Request.FromString(c.sent[0].payload).text for c in channels.values()] == [
        "k1",
        "k2",
        "k3",
    ]
    channels[2].reply("two")
    replies = await asyncio.wait_for(call, 1)
    assert list(replies) == [2]


async def test_replies_yield_errors_and_end_when_every_node_answered() -> None:
    config, channels = nodes(2)
    answers: list[NodeReply[Reply]] = []

    async def collect() -> None:
        async for answer in config.replies(SAY, Request(), Reply, timeout=5):
            answers.append(answer)

    task = asyncio.create_task(collect())
    await settle()
    channels[1].reply_status(grpc.StatusCode.UNKNOWN, "broke")
    channels[2].reply("ok")
    await asyncio.wait_for(task, 1)
    assert [(a.node_id, a.error is None) for a in answers] == [(1, False), (2, True)]


async def test_a_streaming_call_ends_at_its_deadline_and_bounds_unread_replies() -> None:
    big = "x" * (fanout_module.STREAM_REPLY_LIMIT // 3)
    config, channels = nodes(2)
    iterator = config.correctable(STREAM, Request(), Reply, timeout=0.2)
    first = asyncio.ensure_future(iterator.__anext__())
    await settle()
    assert all(c.sent[0].streaming for c in channels.values())
    for _ in range(3):
        channels[1].reply(big)  # 3 unread replies of node 1 pass the bound
    channels[2].reply("y")
    answers = [await asyncio.wait_for(first, 1)]
    async for answer in iterator:  # ends at the deadline: nothing marks a stream's end
        answers.append(answer)
    errors = [a for a in answers if a.error is not None]
    assert [a.node_id for a in errors] == [1]
    assert (
        errors[0].error is not None and errors[0].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    assert any(a.node_id == 2 and a.value is not None for a in answers)


async def test_a_node_that_replied_and_whose_stream_ended_is_done_not_failed() -> None:
    config, channels = nodes(1)
    answers = []
    iterator = config.correctable(STREAM, Request(), Reply, timeout=5)
    first = asyncio.ensure_future(iterator.__anext__())
    await settle()
    channels[1].reply("v1")
    answers.append(await asyncio.wait_for(first, 1))
    channels[1].end()
    async for answer in iterator:
        answers.append(answer)
    assert [(a.node_id, a.value is not None) for a in answers] == [(1, True)]


async def test_an_rpc_keeps_its_deadline_and_gives_up_its_request() -> None:
    config, channels = nodes(1)
    with pytest.raises(CallError) as failure:
        await asyncio.wait_for(config.node(1).rpc(SAY, Request(), Reply, timeout=0.05), 2)
    assert failure.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert channels[1].forgotten == [1]


async def test_a_cancelled_call_gives_up_its_requests() -> None:
    config, channels = nodes(2)
    call = asyncio.create_task(config.quorum_call(SAY, Request(), Reply, timeout=60))
    await settle()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    channels[1].reply("after")  # a late reply may still come: it is recorded
    assert config.node(1).latency is not None


async def test_one_way_calls_report_where_they_went() -> None:
    config, channels = nodes(3)
    channels[2].waits = True  # its buffer is full: multicast drops its copy
    channels[3].closed = True
    sent = await config.multicast(SAY, Request(text="m"))
    assert sent == (1,)
    assert config.node(2).last_error is not None
    assert await config.node(1).unicast(SAY, Request()) is True
