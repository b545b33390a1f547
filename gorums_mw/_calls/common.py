"""What every call shares: its one deadline, reply decoding, per-node answers, trace entries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls.method_check import Shape, check_call
from gorums_mw._errors import CallError
from gorums_mw._proto.stream_pb2 import Message

R = TypeVar("R", bound=ProtoMessage)
T = TypeVar("T")

Entries = Sequence[tuple[str, str]]

QuorumFunction = Callable[[Mapping[int, R]], T | None]
"""Decides a quorum call: called with the replies so far (by node ID) after
each reply; the first result that is not None ends the call."""

_CODES: Final[Mapping[int, grpc.StatusCode]] = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True, slots=True)
class NodeReply(Generic[R]):
    """One node's answer to a call on a configuration: a value or an error.

    Attributes:
        node_id: the node that answered.
        value: its reply, or None if it failed.
        error: its failure, or None if it replied.
    """

    node_id: int
    value: R | None
    error: CallError | None


def checked_method(
    method: str,
    request: ProtoMessage,
    reply_type: type[ProtoMessage] | None,
    shape: Shape = "unary",
) -> str:
    """The full method name, after the local checks of ``check_call``."""
    reply_name = reply_type.DESCRIPTOR.full_name if reply_type is not None else None
    return check_call(method, request.DESCRIPTOR.full_name, reply_name, shape)


def deadline_of(timeout: float | None) -> float | None:
    """The loop time at which a call with ``timeout`` seconds ends (None: never).

    Raises:
        ValueError: ``timeout`` is not a non-negative number.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(
            f"timeout must be a non-negative number of seconds or None, got {timeout!r}"
        )
    return asyncio.get_running_loop().time() + timeout


def timed_out(node_id: int, timeout: float | None) -> CallError:
    """The error of a node that had not answered when the call's time ran out."""
    return CallError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no reply within {timeout} s", node_id)


def decode_reply(message: Message, reply_type: type[R], node_id: int) -> R:
    """The reply payload as ``reply_type``, or the ``CallError`` its status names."""
    if message.HasField("status") and message.status.code != 0:
        code = _CODES.get(message.status.code, grpc.StatusCode.UNKNOWN)
        raise CallError(code, message.status.message, node_id)
    try:
        return reply_type.FromString(message.payload)
    except Exception as exc:  # protobuf raises DecodeError and others
        raise CallError(grpc.StatusCode.INTERNAL, f"bad reply payload: {exc}", node_id) from exc


def reply_or_error(
    future: asyncio.Future[Message], reply_type: type[R], node_id: int
) -> tuple[R, None] | tuple[None, CallError]:
    """A settled, not cancelled reply future as the node's reply, or as its error."""
    failure = future.exception()
    if failure is not None:
        return None, as_call_error(failure, node_id)
    try:
        return decode_reply(future.result(), reply_type, node_id), None
    except CallError as bad_reply:
        return None, bad_reply


def as_call_error(error: BaseException, node_id: int) -> CallError:
    """``error`` as a node's ``CallError`` (``UNKNOWN`` for anything unexpected)."""
    if isinstance(error, CallError):
        return error
    return CallError(grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}", node_id)


def checked_metadata(metadata: Entries) -> Entries:
    """Per-call metadata entries, checked: ``(key, value)`` pairs of text.

    Raises:
        TypeError: ``metadata`` is not pairs of ``str``.
    """
    if not metadata:
        return ()
    if isinstance(metadata, str | bytes) or not all(
        isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        for pair in metadata
    ):
        raise TypeError(f"metadata must be (key, value) pairs of str, got {metadata!r}")
    return tuple(metadata)
