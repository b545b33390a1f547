"""One end of a NodeStream: a single writer, replies routed by message ID to their sinks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
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
    Limits,
)
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.budget import ByteBudget
from gorums_mw._stream.channel import Entries, ReplySink, calling_loop, running_loop
from gorums_mw._stream.framing import Framing
from gorums_mw._stream.messages import (
    ONE_WAY_ENTRY,
    SERVER_ID_BIT,
    error_reply,
    is_one_way,
    message_ids,
    request_message,
    too_large,
)
from gorums_mw._stream.registry import HandlerRegistry
from gorums_mw._stream.send_queue import QueueClosed, SendQueue
from gorums_mw._telemetry import Telemetry

RETIRE_QUIET: Final = 0.1
"""Seconds a retiring stream must be idle before it closes."""

RETIRE_LIMIT: Final = 5.0
"""Seconds after which a retiring stream closes even if still busy."""

_log = logging.getLogger("gorums_mw")

_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


class StreamEndpoint:
    """Sends requests on one NodeStream, routes their replies, serves the
    peer's requests with a ``HandlerRegistry``.

    Every send goes through one queue drained by one writer task, bounded
    in bytes (``Limits.stream_buffer`` per stream, ``total_buffer`` shared
    through ``budget``). A request waits for room until it is forgotten; a
    one-way message never waits (it is dropped when there is no room). A
    peer's request beyond the budget is answered ``RESOURCE_EXHAUSTED`` at
    once and dropped, so the reader never blocks and replies to our own
    calls keep flowing. A message above ``Limits.max_message`` fails alone
    with ``RESOURCE_EXHAUSTED``. Replies go straight to the ``ReplySink`` of
    their request, from the reading task; when the stream ends, every
    request in flight fails at once with ``UNAVAILABLE``. Use from the loop
    that runs the stream; calls from another raise ``RuntimeError`` at once.
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
        self._pending: dict[int, tuple[ReplySink, int, bool]] = {}
        """Requests awaiting replies by message ID: where their replies go, and
        whether several may come."""
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
        """Send a request; its replies go to ``sink`` under ``slot``. Return its ticket.

        As ``Channel.request``: queued now, or once there is room (unless
        forgotten first); a ``streaming`` one stays pending until forgotten.

        Raises:
            CallError: ``UNAVAILABLE`` if the stream has ended,
                ``RESOURCE_EXHAUSTED`` if the request exceeds ``max_message``.
            RuntimeError: called outside the stream's event loop.
        """
        self._check_loop()
        msg_id = next(self._ids)
        message = request_message(msg_id, method, payload, entries)
        size = self._check_size(message, "request")
        self._pending[msg_id] = (sink, slot, streaming)
        self._queue.put(message, size + QUEUED_OVERHEAD, msg_id)
        return msg_id

    def forget(self, ticket: int) -> None:
        """Give up the request of ``ticket``: unsent, it never goes; its replies are dropped."""
        if self._pending.pop(ticket, None) is not None:
            self._queue.forget(ticket)

    def withdraw(self, ticket: int) -> bool:
        """Give up the request of ``ticket`` if it still waits for room; return whether it did."""
        if not self._queue.forget(ticket):
            return False
        del self._pending[ticket]
        return True

    def cast(self, method: str, payload: bytes, entries: Entries) -> bool:
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
        message.entry.append(ONE_WAY_ENTRY)
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
            details = too_large(what, size, self._limits.max_message)
            raise CallError(_RESOURCE_EXHAUSTED, details, self.peer.id)
        return size

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
        for sink, slot, _ in pending.values():
            sink.fail(slot, self._unavailable())

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
            pending = self._pending.get(msg_id)
            if pending is not None:
                sink, slot, streaming = pending
                if not streaming:
                    del self._pending[msg_id]
                sink.deliver(slot, message)
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
                self._serve(message, self._registry, size, is_one_way(message))
            )
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    def _refuse(self, request: Message, code: grpc.StatusCode, details: str) -> None:
        """Answer ``request`` with an error if the send queue has room; never wait."""
        if is_one_way(request):
            return
        reply = error_reply(request, code, details)
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
            reply = error_reply(
                reply, _RESOURCE_EXHAUSTED, too_large("reply", size, self._limits.max_message)
            )
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
