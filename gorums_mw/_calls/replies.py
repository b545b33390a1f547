"""The replies of a call, as async iterators: what interceptors wrap and callers iterate.

Each sends its requests on its first iteration (so interceptors can map the
requests first) and cancels what is outstanding when closed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls.common import (
    NodeReply,
    QuorumFunction,
    R,
    decode_reply,
    reply_or_error,
    timed_out,
)
from gorums_mw._calls.interception import CallInfo
from gorums_mw._calls.node import STREAM_REPLY_LIMIT, Node
from gorums_mw._calls.trace import CallTrace
from gorums_mw._errors import CallError
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.replies import Replies

T = TypeVar("T")
Q = TypeVar("Q", bound=ProtoMessage)


async def close(answers: AsyncIterator[Any]) -> None:
    aclose = getattr(answers, "aclose", None)
    if aclose is not None:
        await aclose()


async def unary_replies(
    info: CallInfo[Q],
    reply_type: type[R],
    deadline: float | None,
    timeout: float | None,
    call: CallTrace,
) -> AsyncGenerator[NodeReply[R], None]:
    """Send the request to every node on first iteration; yield each answer as it arrives."""
    arrivals: asyncio.Queue[NodeReply[R] | None] = asyncio.Queue()
    futures: dict[int, tuple[Node, asyncio.Future[Message]]] = {}
    shared = None if info.per_node else info.request.SerializeToString()
    for node in info.config:
        request = info.request_for(node)
        if request is None:
            continue
        payload = shared if shared is not None else request.SerializeToString()
        try:
            future = node.send_request(info.method, payload, call.entries(node, info.metadata))
        except CallError as error:
            call.node_done(node, error)
            arrivals.put_nowait(NodeReply(node.id, None, error))
            continue
        futures[node.id] = (node, future)
        future.add_done_callback(functools.partial(_queue_reply, arrivals, node, reply_type, call))
    expected = arrivals.qsize() + len(futures)
    # One timer per call puts None (the deadline) among the arrivals: cheaper
    # than a timeout scope around every wait.
    timer = (
        None
        if deadline is None
        else asyncio.get_running_loop().call_at(deadline, arrivals.put_nowait, None)
    )
    try:
        for _ in range(expected):
            answer = await arrivals.get()
            if answer is None:
                break
            yield answer
        else:
            return
        for node, future in futures.values():
            if not future.done():
                late = timed_out(node.id, timeout)
                call.node_done(node, late)
                yield NodeReply(node.id, None, late)
    finally:
        if timer is not None:
            timer.cancel()
        for _, future in futures.values():
            future.cancel()


async def stream_replies(
    info: CallInfo[Q], reply_type: type[R], deadline: float | None, call: CallTrace
) -> AsyncGenerator[NodeReply[R], None]:
    """Send a server-streaming request to every node; yield every reply as it arrives."""
    replies = Replies(STREAM_REPLY_LIMIT * max(1, len(info.config)))
    nodes = {node.id: node for node in info.config}
    failed: list[NodeReply[R]] = []
    for node in info.config:
        request = info.request_for(node)
        if request is None:
            continue
        try:
            node.send_stream(
                info.method,
                request.SerializeToString(),
                call.entries(node, info.metadata),
                replies,
                node.id,
            )
        except CallError as error:
            call.node_done(node, error)
            failed.append(NodeReply(node.id, None, error))
    try:
        for answer in failed:
            yield answer
        while True:
            try:
                arrival = await replies.get(deadline)
            except TimeoutError:
                return
            if arrival is None:
                return
            node_id, item = arrival
            if isinstance(item, CallError):
                call.node_done(nodes[node_id], item)
                yield NodeReply(node_id, None, item)
                continue
            try:
                value = decode_reply(item, reply_type, node_id)
            except CallError as error:
                call.node_done(nodes[node_id], error)
                yield NodeReply(node_id, None, error)
                continue
            call.node_done(nodes[node_id], None)
            yield NodeReply(node_id, value, None)
    finally:
        replies.close()


async def casts(
    info: CallInfo[Q], call: CallTrace, sent: list[int]
) -> AsyncGenerator[NodeReply[Any], None]:
    """Send a one-way request to every node on first iteration; there are no replies."""
    for node in info.config:
        request = info.request_for(node)
        if request is not None and node.cast(
            info.method, request.SerializeToString(), call.entries(node, info.metadata)
        ):
            sent.append(node.id)
    return
    yield  # an async generator that yields nothing


async def improving(
    arrivals: AsyncGenerator[NodeReply[R], None], quorum_function: QuorumFunction[R, T]
) -> AsyncIterator[T]:
    """The quorum function's results over the latest reply of each node."""
    latest: dict[int, R] = {}
    try:
        async for answer in arrivals:
            if answer.value is None:
                continue
            latest[answer.node_id] = answer.value
            result = quorum_function(latest)
            if result is not None:
                yield result
    finally:
        await arrivals.aclose()


async def without_errors(
    arrivals: AsyncGenerator[NodeReply[R], None],
) -> AsyncIterator[NodeReply[R]]:
    try:
        async for answer in arrivals:
            if answer.error is None:
                yield answer
    finally:
        await arrivals.aclose()


def _queue_reply(
    arrivals: asyncio.Queue[NodeReply[R] | None],
    node: Node,
    reply_type: type[R],
    call: CallTrace,
    future: asyncio.Future[Message],
) -> None:
    if future.cancelled():
        return
    reply, error = reply_or_error(future, reply_type, node.id)
    call.node_done(node, error)
    arrivals.put_nowait(NodeReply(node.id, reply, error))
