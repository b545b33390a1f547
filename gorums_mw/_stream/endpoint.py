"""One end of a NodeStream: a single writer, replies routed by message ID.

Both ends of a stream allocate message IDs for the messages they send. The
end that dialed uses IDs below ``SERVER_ID_BIT``; the end that accepted uses
IDs with that bit set, so the two never collide and a message's ID says
whether it is a reply to us or a request for us. One-way messages take an ID
from the same partition but no reply is awaited (as upstream Go Gorums
does); a request with ID 0 is one-way too (earlier gorums-mw versions).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Final

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from gorums_mw._errors import CallError
from gorums_mw._identity.peer import Peer
from gorums_mw._limits import (
    QUEUED_OVERHEAD,
    REFUSAL_SLACK,
    SERVING_OVERHEAD,
    ByteBudget,
    Limits,
)
from gorums_mw._proto.stream_pb2 import Message, MetadataEntry
from gorums_mw._stream.framing import Framing
from gorums_mw._stream.registry import HandlerRegistry
from gorums_mw._stream.replies import Replies, StreamCall
from gorums_mw._stream.send_queue import QueueClosed, SendQueue
from gorums_mw._telemetry import Telemetry

SERVER_ID_BIT: Final = 1 << 63
"""Set in the IDs of messages sent by the end that accepted the stream."""

RETIRE_QUIET: Final = 0.1
"""Seconds a retiring stream must be idle before it closes."""

RETIRE_LIMIT: Final = 5.0
"""Seconds after which a retiring stream closes even if still busy."""

ONE_WAY_KEY: Final = "gorums-one-way"
"""Entry marking a one-way request, so a gorums-mw receiver sends no reply.
Go Gorums knows one-way methods by their type and ignores the entry."""

_log = logging.getLogger("gorums_mw")

Entries = Sequence[tuple[str, str]]

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
_ONE_WAY_ENTRY = MetadataEntry(key=ONE_WAY_KEY, value="1")


def message_ids(*, accepted: bool) -> itertools.count[int]:
    """A fresh generator of message IDs for one end of a stream."""
    return itertools.count(SERVER_ID_BIT + 1 if accepted else 1)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None (asyncio's own fast check)."""
    return asyncio._get_running_loop()


def calling_loop(bound: asyncio.AbstractEventLoop | None, what: str) -> asyncio.AbstractEventLoop:
    """The running loop, which must be ``bound`` (when ``what`` is bound to one).

    Raises:
        RuntimeError: no loop runs in this thread, or another one than ``bound``.
    """
    loop = running_loop()
    if loop is None or (bound is not None and loop is not bound):
        raise RuntimeError(
            f"{what} runs on another event loop: make calls from the loop that started it"
            " (from another thread, use asyncio.run_coroutine_threadsafe)"
        )
    return loop


def request_message(msg_id: int, method: str, payload: bytes, entries: Entries) -> Message:
    """A NodeStream request carrying ``entries`` as its metadata."""
    message = Message(message_seq_no=msg_id, method=method, payload=payload)
    if entries:
        message.entry.extend(MetadataEntry(key=k, value=v) for k, v in entries)
    return message


class StreamEndpoint:
    """Sends requests on one NodeStream, routes their replies, serves the
    peer's requests with a ``HandlerRegistry``.

    Every send goes through one queue drained by one writer task, bounded
    in bytes (``Limits.stream_buffer`` per stream, ``total_buffer`` shared
    through ``budget``). A call waits for room as long as its reply future
    is pending; a one-way message never waits (it is dropped when there is
    no room). A peer's request beyond the budget is answered
    ``RESOURCE_EXHAUSTED`` at once and dropped, so the reader never blocks
    and replies to our own calls keep flowing. A message above
    ``Limits.max_message`` fails alone with ``RESOURCE_EXHAUSTED``. When the
    stream ends, every call in flight fails at once with ``UNAVAILABLE``.
    Use from the event loop that runs the stream; calls from another loop
    raise ``RuntimeError`` at once.
    """

    __slots__ = (
        "_activity",
        "_budget",
        "_closed",
        "_ended",
        "_handlers",
        "_ids",
        "_limits",
        "_loop",
        "_pending",
        "_queue",
        "_registry",
        "_reply_bit",
        "_tasks",
        "_telemetry",
        "_trace_requests",
        "batched",
        "failure",
        "peer",
        "sent",
        "writes",
    )

    def __init__(
        self,
        peer: Peer,
        registry: HandlerRegistry | None,
        *,
        accepted: bool,
        limits: Limits | None = None,
        budget: ByteBudget | None = None,
        ids: itertools.count[int] | None = None,
        telemetry: Telemetry | None = None,
        trace_requests: bool = False,
    ) -> None:
        self.peer = peer
        self._telemetry = telemetry
        self._trace_requests = trace_requests
        self._registry = registry
        self._limits = limits if limits is not None else Limits()
        self._budget = ByteBudget(self._limits.stream_buffer, budget)
        self._ids = ids if ids is not None else message_ids(accepted=accepted)
        self._reply_bit = SERVER_ID_BIT if accepted else 0
        self._queue: SendQueue[Message] = SendQueue(self._budget)
        self._pending: dict[int, asyncio.Future[Message] | StreamCall] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._ended: asyncio.Event | None = None
        self._activity: asyncio.Event | None = None
        self._loop = running_loop()
        self.batched = False
        """Whether the stream carries batches (BatchedNodeStream), set once it runs."""
        self.failure: CallError | None = None
        """Why the peer's side ended the stream, if it sent something malformed."""
        self.writes = 0
        """gRPC messages written so far."""
        self.sent = 0
        """NodeStream messages written so far (more than ``writes`` when batched)."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<StreamEndpoint peer={self.peer.id} {state} in_flight={len(self._pending)}"
            f" buffered={self._budget.used}>"
        )

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

    @property
    def sends_waiting(self) -> int:
        """Calls whose requests wait for room in the send buffer."""
        return self._queue.waiting

    @property
    def buffered(self) -> int:
        """Bytes this stream buffers now: queued messages and requests in service."""
        return self._budget.used

    def call(self, method: str, payload: bytes, entries: Entries = ()) -> asyncio.Future[Message]:
        """Send a request; return the future of its reply message.

        The request is queued at once, or as soon as there is room while the
        future is pending; cancel the future to give up (a request still
        waiting for room is then never sent).

        Raises:
            CallError: ``UNAVAILABLE`` if the stream has ended,
                ``RESOURCE_EXHAUSTED`` if the request exceeds ``max_message``.
            RuntimeError: called outside the stream's event loop.
        """
        loop = self._check_loop()
        msg_id = next(self._ids)
        message = request_message(msg_id, method, payload, entries)
        size = self._check_size(message, "request")
        reply: asyncio.Future[Message] = loop.create_future()
        self._pending[msg_id] = reply
        reply.add_done_callback(lambda _: self._pending.pop(msg_id, None))
        self._queue.put(message, size + QUEUED_OVERHEAD, reply)
        return reply

    def call_stream(
        self, method: str, payload: bytes, entries: Entries, replies: Replies, key: int
    ) -> None:
        """Send a request to a server-streaming method; its replies go to ``replies`` under ``key``.

        The call stays pending until ``replies`` is closed or the stream ends
        (then ``key`` gets a final ``UNAVAILABLE``).

        Raises:
            CallError, RuntimeError: as ``call``.
        """
        loop = self._check_loop()
        msg_id = next(self._ids)
        message = request_message(msg_id, method, payload, entries)
        size = self._check_size(message, "request")
        owner: asyncio.Future[None] = loop.create_future()
        self._pending[msg_id] = StreamCall(replies, key, owner)
        owner.add_done_callback(lambda _: self._pending.pop(msg_id, None))
        replies.track(key, owner)
        self._queue.put(message, size + QUEUED_OVERHEAD, owner)

    def cast(self, method: str, payload: bytes, entries: Entries = ()) -> bool:
        """Send a one-way request (no reply) if there is room now.

        Returns:
            Whether it was queued; False when the send buffer is full (it is
            dropped, never waited for).

        Raises:
            CallError: as ``call``.
            RuntimeError: called outside the stream's event loop.
        """
        self._check_loop()
        message = request_message(next(self._ids), method, payload, entries)
        message.entry.append(_ONE_WAY_ENTRY)
        size = self._check_size(message, "request")
        return self._queue.offer(message, size + QUEUED_OVERHEAD)

    def _check_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop = calling_loop(self._loop, f"the stream to node {self.peer.id}")
        if self._closed:
            raise self._unavailable()
        return loop

    def _check_size(self, message: Message, what: str) -> int:
        size = message.ByteSize()
        if size > self._limits.max_message:
            raise CallError(_RESOURCE_EXHAUSTED, self._too_large(what, size), self.peer.id)
        return size

    def _too_large(self, what: str, size: int) -> str:
        return (
            f"{what} of {size} bytes exceeds the message limit of"
            f" {self._limits.max_message} bytes (Limits.max_message)"
        )

    async def run(self, framing: Framing) -> None:
        """Carry the stream until it ends or ``close()`` is called.

        Args:
            framing: reads and writes the stream's gRPC messages (one
                NodeStream message each, or a batch each).
        """
        if self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self.batched = framing.batch > 1
        tasks = [
            asyncio.create_task(self._read_loop(framing)),
            asyncio.create_task(self._write_loop(framing)),
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
            if isinstance(reply, StreamCall):
                reply.fail(self._unavailable())
            elif not reply.done():
                reply.set_exception(self._unavailable())

    async def _read_loop(self, framing: Framing) -> None:
        receive, read, unpack = self._receive, framing.read, framing.unpack
        try:
            while (messages := unpack(await read())) is not None:
                for message in messages:
                    receive(message)
        except DecodeError as exc:
            self.failure = CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed NodeStream message: {exc}",
                self.peer.id,
            )
        except (aio.AioRpcError, aio.UsageError, grpc.RpcError) as exc:
            _log.debug("stream with peer %s ended: %s", self.peer.id, exc)

    def _receive(self, message: Message) -> None:
        if self._activity is not None:
            self._activity.set()
        msg_id = message.message_seq_no
        if msg_id and msg_id & SERVER_ID_BIT == self._reply_bit:
            reply = self._pending.get(msg_id)
            if isinstance(reply, StreamCall):
                reply.deliver(message)
            elif reply is not None and not reply.done():
                reply.set_result(message)
            return
        size = len(message.payload) + SERVING_OVERHEAD
        if self._registry is None:
            self._refuse(message, grpc.StatusCode.UNIMPLEMENTED, "this node serves no methods")
        elif not self._budget.try_take(size):
            self._refuse(
                message,
                _RESOURCE_EXHAUSTED,
                f"stream buffer full: {self._budget.used} bytes buffered"
                f" (Limits.stream_buffer {self._limits.stream_buffer},"
                f" total_buffer {self._limits.total_buffer})",
            )
        else:
            task = asyncio.create_task(
                self._serve(message, self._registry, size, _is_one_way(message))
            )
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    def _refuse(self, request: Message, code: grpc.StatusCode, details: str) -> None:
        """Answer ``request`` with an error if the send queue has room; never wait."""
        if _is_one_way(request):
            return
        reply = _error_reply(request, code, details)
        if not self._queue.offer(reply, reply.ByteSize() + QUEUED_OVERHEAD, REFUSAL_SLACK):
            _log.debug("dropped %s from peer %s: send queue full", request.method, self.peer.id)

    async def _serve(
        self, request: Message, registry: HandlerRegistry, size: int, one_way: bool
    ) -> None:
        try:
            await registry.handle(
                request,
                self.peer,
                None if one_way else self._send_reply,
                telemetry=self._telemetry,
                trace_all=self._trace_requests,
            )
        finally:
            self._budget.release(size)

    def _send_reply(self, reply: Message) -> bool:
        """Queue a reply; it never waits. False once the stream's buffer is over its bound
        (a server-streaming handler must then stop)."""
        if self._closed:
            return False
        size = reply.ByteSize()
        if size > self._limits.max_message:
            reply = _error_reply(reply, _RESOURCE_EXHAUSTED, self._too_large("reply", size))
            size = reply.ByteSize()
        self._queue.push(reply, size + QUEUED_OVERHEAD)
        return self._budget.used <= self._limits.stream_buffer

    async def _write_loop(self, framing: Framing) -> None:
        queue, batch, max_bytes = self._queue, framing.batch, self._limits.max_message
        sizes = self._telemetry.batch_size if self._telemetry is not None and batch > 1 else None
        try:
            while True:
                messages = await queue.get_batch(batch, max_bytes)
                self.writes += 1
                self.sent += len(messages)
                if sizes is not None:
                    sizes.record(len(messages))
                await framing.write(messages)
        except QueueClosed:
            pass
        except (aio.AioRpcError, aio.UsageError, grpc.RpcError) as exc:
            _log.debug("writing to peer %s failed: %s", self.peer.id, exc)

    def _unavailable(self) -> CallError:
        return CallError(_UNAVAILABLE, "stream to node ended", self.peer.id)


def _is_one_way(request: Message) -> bool:
    """Whether ``request`` wants no reply: ID 0, or marked one-way by its sender."""
    if not request.message_seq_no:
        return True
    return any(entry.key == ONE_WAY_KEY for entry in request.entry)


def _error_reply(request: Message, code: grpc.StatusCode, details: str) -> Message:
    reply = Message(message_seq_no=request.message_seq_no, method=request.method)
    reply.status.code = code.value[0]
    reply.status.message = details
    return reply
