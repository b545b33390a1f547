"""What a call gives back: one ``NodeReply`` per node answer, decoded from the wire,
and the small iterators that reshape a stream of answers."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Final, Generic, NamedTuple, TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage

from gorums_mw._errors import CallError
from gorums_mw._proto.stream_pb2 import Message

R = TypeVar("R", bound=ProtoMessage)
T = TypeVar("T")

QuorumFunction = Callable[[Mapping[int, R]], T | None]
"""Decides a quorum call: called with the replies so far (by node ID) after
each reply; the first result that is not None ends the call."""

_CODES: Final[Mapping[int, grpc.StatusCode]] = {code.value[0]: code for code in grpc.StatusCode}


class NodeReply(NamedTuple, Generic[R]):
    """One node's answer to a call on a configuration: a value or an error
    (an immutable tuple of the three).

    Attributes:
        node_id: the node that answered.
        value: its reply, or None if it failed.
        error: its failure, or None if it replied.
    """

    node_id: int
    value: R | None
    error: CallError | None


def decode_reply(message: Message, reply_type: type[R], node_id: int) -> R:
    """The reply payload as ``reply_type``, or the ``CallError`` its status names."""
    if message.HasField("status") and message.status.code != 0:
        code = _CODES.get(message.status.code, grpc.StatusCode.UNKNOWN)
        raise CallError(code, message.status.message, node_id)
    try:
        return reply_type.FromString(message.payload)
    except Exception as exc:  # protobuf raises DecodeError and others
        raise CallError(grpc.StatusCode.INTERNAL, f"bad reply payload: {exc}", node_id) from exc


def timed_out(node_id: int, timeout: float | None) -> CallError:
    """The error of a node that had not answered when the call's time ran out."""
    return CallError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no reply within {timeout} s", node_id)


def unavailable(node_id: int) -> CallError:
    """The error of a call to a node that is not connected."""
    return CallError(grpc.StatusCode.UNAVAILABLE, "node is not connected", node_id)


async def close(answers: AsyncIterator[Any]) -> None:
    """Close ``answers`` if it can be closed (an interceptor may return any iterator)."""
    aclose = getattr(answers, "aclose", None)
    if aclose is not None:
        await aclose()


async def improving(
    answers: AsyncGenerator[NodeReply[R], None], quorum_function: QuorumFunction[R, T]
) -> AsyncIterator[T]:
    """The quorum function's results over the latest reply of each node."""
    latest: dict[int, R] = {}
    try:
        async for answer in answers:
            if answer.value is None:
                continue
            latest[answer.node_id] = answer.value
            result = quorum_function(latest)
            if result is not None:
                yield result
    finally:
        await answers.aclose()


async def without_errors(
    answers: AsyncGenerator[NodeReply[R], None],
) -> AsyncIterator[NodeReply[R]]:
    """The replies among ``answers``, the errors left out."""
    try:
        async for answer in answers:
            if answer.error is None:
                yield answer
    finally:
        await answers.aclose()
