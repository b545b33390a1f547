"""One end of a NodeStream: a single writer, replies routed by message ID.

Both ends of a stream allocate message IDs for the requests they send. The
end that dialed uses IDs below ``SERVER_ID_BIT``; the end that accepted uses
IDs with that bit set, so the two never collide and a message's ID says
whether it is a reply to us or a request for us. ID 0 marks a one-way
message (multicast), which gets no reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import grpc
from grpc import aio

from gorums_mw._errors import CallError
from gorums_mw._peer import Peer
from gorums_mw._proto.stream_pb2 import Message, MetadataEntry
from gorums_mw._stream._registry import HandlerRegistry
from gorums_mw._stream._send_queue import QueueClosed, SendQueue

SERVER_ID_BIT: Final = 1 << 63
"""Set in the IDs of requests sent by the end that accepted the stream."""

DEFAULT_SEND_BUFFER: Final = 1024
"""Messages a stream queues for its writer before senders wait."""

RETIRE_QUIET: Final = 0.1
"""Seconds a retiring stream must be idle before it closes."""

RETIRE_LIMIT: Final = 5.0
"""Seconds after which a retiring stream closes even if still busy."""

ONE_WAY: Final = 0

_log = logging.getLogger("gorums_mw")

ReadFn = Callable[[], Awaitable[object]]
WriteFn = Callable[[Message], Awaitable[None]]
Entries = Sequence[tuple[str, str]]


def message_ids(*, accepted: bool) -> itertools.count[int]:
    """A fresh generator of request IDs for one end of a stream."""
    return itertools.count(SERVER_ID_BIT + 1 if accepted else 1)


class StreamEndpoint:
    """Sends requests on one NodeStream, routes their replies, serves the
    peer's requests with a ``HandlerRegistry``.

    Every send goes through one bounded queue drained by one writer task.
    At most ``send_buffer`` of the peer's requests are served at once; more
    are answered ``RESOURCE_EXHAUSTED`` without waiting (never blocking the
    reader, so replies to our own calls keep flowing). When the stream ends,
    every call in flight fails at once with ``UNAVAILABLE``. Use from the
    event loop that runs the stream only.
    """

    __slots__ = (
        "_activity",
        "_closed",
        "_ended",
        "_handlers",
        "_ids",
        "_max_serving",
        "_pending",
        "_queue",
        "_registry",
        "_reply_bit",
        "_tasks",
        "peer",
    )

    def __init__(
        self,
        peer: Peer,
        registry: HandlerRegistry | None,
        *,
        accepted: bool,
        send_buffer: int = DEFAULT_SEND_BUFFER,
        ids: itertools.count[int] | None = None,
    ) -> None:
        self.peer = peer
        self._registry = registry
        self._ids = ids if ids is not None else message_ids(accepted=accepted)
        self._reply_bit = SERVER_ID_BIT if accepted else 0
        self._queue: SendQueue[Message] = SendQueue(send_buffer)
        self._max_serving = send_buffer
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._ended: asyncio.Event | None = None
        self._activity: asyncio.Event | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<StreamEndpoint peer={self.peer.id} {state} in_flight={len(self._pending)}>"

    @property
    def accepted(self) -> bool:
        """Whether this end accepted the stream (False: this end dialed it)."""
        return self._reply_bit != 0

    @property
    def closed(self) -> bool:
        """Whether the stream has ended."""
        return self._closed

    @property
    def in_flight(self) -> int:
        """Calls sent on this stream that wait for a reply."""
        return len(self._pending)

    async def call(
        self, method: str, payload: bytes, entries: Entries = ()
    ) -> asyncio.Future[Message]:
        """Send a request; return the future of its reply message.

        Raises:
            CallError: ``UNAVAILABLE`` if the stream has ended.
        """
        msg_id = next(self._ids)
        reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = reply
        reply.add_done_callback(lambda _: self._pending.pop(msg_id, None))
        await self._send(msg_id, method, payload, entries)
        return reply

    async def cast(self, method: str, payload: bytes, entries: Entries = ()) -> None:
        """Send a one-way request (no reply).

        Raises:
            CallError: ``UNAVAILABLE`` if the stream has ended.
        """
        await self._send(ONE_WAY, method, payload, entries)

    async def _send(self, msg_id: int, method: str, payload: bytes, entries: Entries) -> None:
        message = Message(message_seq_no=msg_id, method=method, payload=payload)
        if entries:
            message.entry.extend(MetadataEntry(key=k, value=v) for k, v in entries)
        if self._closed:
            raise self._unavailable()
        try:
            await self._queue.put(message)
        except QueueClosed:
            raise self._unavailable() from None

    async def run(self, read: ReadFn, write: WriteFn) -> None:
        """Carry the stream until it ends or ``close()`` is called.

        Args:
            read: returns the next message, or anything else at the end
                (``grpc.aio.EOF``).
            write: sends one message.
        """
        if self._closed:
            return
        tasks = [
            asyncio.create_task(self._read_loop(read)),
            asyncio.create_task(self._write_loop(write)),
        ]
        self._tasks = tasks
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.close()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_closed(self) -> None:
        """Return once the stream has ended."""
        if self._closed:
            return
        if self._ended is None:
            self._ended = asyncio.Event()
        await self._ended.wait()

    def retire(self) -> None:
        """Close the stream once it is idle: for a stream that lost a tiebreak.

        Calls already in flight in either direction are answered first; the
        stream closes after ``RETIRE_QUIET`` seconds without traffic (at most
        ``RETIRE_LIMIT`` seconds from now). Must run on the stream's loop.
        """
        if not self._closed and self._activity is None:
            self._activity = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self._close_when_idle(self._activity))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _close_when_idle(self, activity: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RETIRE_LIMIT):
                while True:
                    activity.clear()
                    try:
                        await asyncio.wait_for(activity.wait(), RETIRE_QUIET)
                    except TimeoutError:
                        if not self._pending and len(self._handlers) == 1:
                            break
        self.close()

    def close(self) -> None:
        """End the stream: fail calls in flight with ``UNAVAILABLE``, stop serving."""
        if self._closed:
            return
        self._closed = True
        if self._ended is not None:
            self._ended.set()
        self._queue.close()
        for task in (*self._tasks, *self._handlers):
            task.cancel()
        pending, self._pending = self._pending, {}
        for reply in pending.values():
            if not reply.done():
                reply.set_exception(self._unavailable())

    async def _read_loop(self, read: ReadFn) -> None:
        try:
            while True:
                message = await read()
                if not isinstance(message, Message):
                    return
                self._receive(message)
        except (aio.AioRpcError, aio.UsageError, grpc.RpcError) as exc:
            _log.debug("stream with peer %s ended: %s", self.peer.id, exc)

    def _receive(self, message: Message) -> None:
        if self._activity is not None:
            self._activity.set()
        msg_id = message.message_seq_no
        if msg_id != ONE_WAY and msg_id & SERVER_ID_BIT == self._reply_bit:
            reply = self._pending.pop(msg_id, None)
            if reply is not None and not reply.done():
                reply.set_result(message)
            return
        if self._registry is None:
            self._refuse(message, grpc.StatusCode.UNIMPLEMENTED, "this node serves no methods")
        elif len(self._handlers) >= self._max_serving:
            self._refuse(message, grpc.StatusCode.RESOURCE_EXHAUSTED, "too many requests")
        else:
            task = asyncio.create_task(self._serve(message, self._registry))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    def _refuse(self, request: Message, code: grpc.StatusCode, details: str) -> None:
        """Answer ``request`` with an error if the send queue has room; never wait."""
        if request.message_seq_no == ONE_WAY:
            return
        reply = Message(message_seq_no=request.message_seq_no, method=request.method)
        reply.status.code = code.value[0]
        reply.status.message = details
        if not self._queue.offer(reply):
            _log.debug("dropped %s from peer %s: send queue full", request.method, self.peer.id)

    async def _serve(self, request: Message, registry: HandlerRegistry) -> None:
        reply = await registry.handle(request, self.peer)
        if reply is not None and not self._closed:
            with contextlib.suppress(QueueClosed):
                await self._queue.put(reply)

    async def _write_loop(self, write: WriteFn) -> None:
        try:
            while True:
                await write(await self._queue.get())
        except QueueClosed:
            pass
        except (aio.AioRpcError, aio.UsageError, grpc.RpcError) as exc:
            _log.debug("writing to peer %s failed: %s", self.peer.id, exc)

    def _unavailable(self) -> CallError:
        return CallError(grpc.StatusCode.UNAVAILABLE, "stream to node ended", self.peer.id)
