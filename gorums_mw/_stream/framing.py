"""How NodeStream messages go into gRPC messages: one each, or a batch each.

The framing is chosen once per stream: ``PlainFraming`` for
``/stream.Gorums/NodeStream`` (what Go Gorums speaks), ``BatchFraming`` for
``/gorums_mw.Stream/BatchedNodeStream`` between gorums-mw peers. The
stream's single writer drains its queue through it: a plain stream writes
one message at a time; a batched one writes whatever is queued at that
moment (up to ``MAX_BATCH`` messages and ``Limits.max_message`` bytes) as
one gRPC message, with no timer: at one call in flight a batch holds one
message, under load batches grow by themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

from gorums_mw._proto.batch_pb2 import Batch
from gorums_mw._proto.stream_pb2 import Message

MAX_BATCH: Final = 256
"""The most messages one batch carries."""


class Framing(Protocol):
    """Reads and writes a stream's messages, one gRPC message at a time.

    ``read`` is the stream's own read and ``write`` returns the stream's own
    write: no coroutine of ours per gRPC message.
    """

    @property
    def batch(self) -> int:
        """The most messages one write carries."""
        ...

    @property
    def read(self) -> Callable[[], Awaitable[object]]:
        """Receive the next gRPC message (anything else at the end); ``unpack`` it."""
        ...

    def unpack(self, received: object) -> Sequence[Message] | None:
        """The messages of what ``read`` returned; None when the stream has ended."""
        ...

    def write(self, messages: Sequence[Message]) -> Awaitable[None]:
        """Send ``messages`` (at most ``batch`` of them) as one gRPC message."""
        ...


class PlainFraming:
    """One NodeStream message per gRPC message (``stream.Message`` on the wire)."""

    __slots__ = ("_write", "read")

    batch = 1

    def __init__(
        self, read: Callable[[], Awaitable[object]], write: Callable[[Message], Awaitable[None]]
    ) -> None:
        self.read = read
        self._write = write

    @staticmethod
    def unpack(received: object) -> Sequence[Message] | None:
        """The message, or None at the end (``grpc.aio.EOF``)."""
        return (received,) if isinstance(received, Message) else None

    def write(self, messages: Sequence[Message]) -> Awaitable[None]:
        """Send the one message."""
        return self._write(messages[0])


class BatchFraming:
    """Several NodeStream messages per gRPC message (``gorums_mw.Batch`` on the wire)."""

    __slots__ = ("_write", "read")

    batch = MAX_BATCH

    def __init__(
        self, read: Callable[[], Awaitable[object]], write: Callable[[Batch], Awaitable[None]]
    ) -> None:
        self.read = read
        self._write = write

    @staticmethod
    def unpack(received: object) -> Sequence[Message] | None:
        """The messages of the batch, or None at the end."""
        return received.messages if isinstance(received, Batch) else None

    def write(self, messages: Sequence[Message]) -> Awaitable[None]:
        """Send ``messages`` as one batch."""
        return self._write(Batch(messages=messages))
