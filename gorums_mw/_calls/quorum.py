"""Deciding a quorum call: collecting replies until a quorum function returns a result."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Generic, cast

import grpc
from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls.common import (
    Entries,
    NodeReply,
    QuorumFunction,
    R,
    reply_or_error,
    timed_out,
)
from gorums_mw._calls.node import Node
from gorums_mw._calls.replies import close
from gorums_mw._calls.trace import CallTrace
from gorums_mw._errors import CallError
from gorums_mw._proto.stream_pb2 import Message

UNDECIDED = object()
"""The result of a quorum call that reached no decision."""


def threshold(needed: int, replies: Mapping[int, R]) -> dict[int, R] | None:
    """The built-in quorum function: all replies, once there are ``needed``."""
    return dict(replies) if len(replies) >= needed else None


async def decide(
    answers: AsyncIterator[NodeReply[R]], decide: QuorumFunction[R, object]
) -> tuple[object, dict[int, R], dict[int, CallError]]:
    """Consume intercepted answers until ``decide`` returns a result."""
    replies: dict[int, R] = {}
    errors: dict[int, CallError] = {}
    try:
        async for answer in answers:
            if answer.error is not None or answer.value is None:
                errors[answer.node_id] = answer.error or CallError(
                    grpc.StatusCode.UNKNOWN, "an interceptor dropped the reply", answer.node_id
                )
                continue
            replies[answer.node_id] = answer.value
            errors.pop(answer.node_id, None)
            result = decide(replies)
            if result is not None:
                return result, replies, errors
    finally:
        await close(answers)
    return UNDECIDED, replies, errors


class Quorum(Generic[R]):
    """Collects the replies of a quorum call; ``done`` resolves when it is decided.

    It is decided when ``decide`` returns a result, when every node has
    answered, or as soon as more nodes failed than a quorum of ``needed``
    can spare (0: only a quorum function knows, so wait for every node).
    """

    __slots__ = (
        "call",
        "decide",
        "done",
        "errors",
        "needed",
        "replies",
        "reply_type",
        "result",
        "size",
    )

    def __init__(
        self,
        size: int,
        needed: int,
        reply_type: type[R],
        decide: QuorumFunction[R, object],
        call: CallTrace,
    ) -> None:
        self.size = size
        self.needed = needed
        self.reply_type = reply_type
        self.decide = decide
        self.call = call
        self.replies: dict[int, R] = {}
        self.errors: dict[int, CallError] = {}
        self.result: object = UNDECIDED
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_reply(self, node: Node, future: asyncio.Future[Message]) -> None:
        if self.done.done() or future.cancelled():
            return
        reply, error = reply_or_error(future, self.reply_type, node.id)
        if error is not None:
            self.fail(node, error)
            return
        self.call.node_done(node, None)
        self.replies[node.id] = cast(R, reply)
        result = self.decide(self.replies)
        if result is not None:
            self.result = result
            self.done.set_result(None)
        elif len(self.replies) + len(self.errors) == self.size:
            self.done.set_result(None)

    def fail(self, node: Node, error: CallError) -> None:
        self.call.node_done(node, error)
        self.errors[node.id] = error
        if self.done.done():
            return
        hopeless = self.needed and len(self.errors) > self.size - self.needed
        if hopeless or len(self.replies) + len(self.errors) == self.size:
            self.done.set_result(None)

    def time_out(
        self,
        nodes: Sequence[Node],
        futures: Mapping[int, asyncio.Future[Message]],
        timeout: float | None,
    ) -> None:
        for node in nodes:
            if node.id in futures and node.id not in self.replies and node.id not in self.errors:
                error = timed_out(node.id, timeout)
                self.errors[node.id] = error
                self.call.node_done(node, error)


async def collect(
    nodes: Sequence[Node],
    method: str,
    request: ProtoMessage,
    reply_type: type[R],
    needed: int,
    decide: QuorumFunction[R, object],
    deadline: float | None,
    timeout: float | None,
    entries: Entries,
    call: CallTrace,
) -> tuple[object, dict[int, R], dict[int, CallError]]:
    """A quorum call without interceptors: callbacks, no task per node."""
    collector: Quorum[R] = Quorum(len(nodes), needed, reply_type, decide, call)
    payload = request.SerializeToString()
    futures: dict[int, asyncio.Future[Message]] = {}
    for node in nodes:
        try:
            futures[node.id] = node.send_request(method, payload, call.entries(node, entries))
        except CallError as error:
            collector.fail(node, error)
    for node in nodes:
        future = futures.get(node.id)
        if future is not None:
            future.add_done_callback(functools.partial(collector.on_reply, node))
    try:
        if deadline is None:  # no timeout scope to set up (it costs per call)
            await collector.done
        else:
            async with asyncio.timeout_at(deadline):
                await collector.done
    except TimeoutError:
        collector.time_out(nodes, futures, timeout)
    finally:
        for future in futures.values():
            future.cancel()
    return collector.result, collector.replies, collector.errors
