"""What a call gives back: one ``NodeReply`` per node answer, decoded from the wire."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Generic, NamedTuple, TypeVar

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
