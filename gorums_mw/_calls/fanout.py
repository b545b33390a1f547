"""The one call engine: send a call's requests to its nodes and gather their answers.

Every call kind runs through a ``Fanout``: a single RPC (one node), a
quorum call, reply iterators and correctable calls (several nodes), and
unicast and multicast (one-way: no answers). It holds the nodes, the
request each gets, the metadata, one deadline and the call's trace; the
channels deliver each reply straight to it (it is their ``ReplySink``),
and it hands every answer, decoded, to its consumer: either a function
called at once (``on_answer``: the quorum decision of a call without
interceptors, a single RPC) or an async iterator (``answers``: what
interceptors wrap, and what ``replies`` and ``correctable`` yield).

One timer per call ends it at its deadline: each node still silent then
answers ``DEADLINE_EXCEEDED`` (a server-streaming call just ends). When the
consumer is done, requests still unanswered are given up, except that a
unary call keeps listening for late replies until its deadline (at most
``LATE_REPLIES`` seconds), so a node slower than the quorum still gets a
latency. A retry of failed nodes would be one more request in ``_send``
from the failure in ``fail``/``deliver``: the slot of a request, not its
node, holds its CLIENT span, so a second request has a span of its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, Generic

import grpc
from opentelemetry import trace

from gorums_mw._calls.answers import NodeReply, R, decode_reply, timed_out, unavailable
from gorums_mw._calls.spec import CallSpec
from gorums_mw._calls.target import Target
from gorums_mw._calls.trace import CallTrace
from gorums_mw._errors import CallError
from gorums_mw._limits import QUEUED_OVERHEAD
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.channel import Channel

LATE_REPLIES: Final = 5.0
"""Seconds a unary call listens for late replies after its consumer is done."""

STREAM_REPLY_LIMIT: Final = 8 * 1024 * 1024
"""Bytes of replies a server-streaming call may hold unread, per node."""

PayloadOf = Callable[[Target], bytes | None]
"""The serialized request a node gets (None: it gets none)."""


class _Slot:
    """One request of a call: its node, where it went, its span, its state."""

    __slots__ = ("answered", "channel", "node", "open", "span", "ticket", "unread")

    def __init__(self, node: Target) -> None:
        self.node = node
        self.channel: Channel | None = None
        self.ticket = 0
        self.span: trace.Span | None = None
        self.open = False
        """Sent and not yet answered (unary) or ended (server streaming)."""
        self.answered = False
        """Its first answer was recorded (latency, span)."""
        self.unread = 0
        """Bytes of its replies delivered but not yet read (server streaming)."""


class Fanout(Generic[R]):
    """One call on some nodes: sends each its request, delivers their answers.

    Use from the event loop of the nodes' channels. Consume it one way:
    set ``on_answer`` and call ``start``, then ``finish`` when done; or
    ``start``, ``next_answer`` until None, ``finish`` (``answers_of(fanout)`` in ``iteration``
    does that as an async iterator). A one-way call uses ``cast`` instead.
    """

    __slots__ = (
        "_ended",
        "_loop",
        "_outstanding",
        "_queue",
        "_reply_type",
        "_sending",
        "_slots",
        "_spec",
        "_timer",
        "_trace",
        "_waiter",
        "finished",
        "nodes",
        "on_answer",
    )

    def __init__(
        self, nodes: Sequence[Target], spec: CallSpec, trace: CallTrace, reply_type: type[R]
    ) -> None:
        self.nodes = nodes
        self._spec = spec
        self._trace = trace
        self._reply_type = reply_type
        self._loop = asyncio.get_running_loop()
        self._slots: list[_Slot] = []
        self._outstanding = 0
        self._timer: asyncio.TimerHandle | None = None
        self._ended = False
        self._sending = False
        self._queue: deque[tuple[NodeReply[R], _Slot | None, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.on_answer: Callable[[NodeReply[R]], None] | None = None
        """Called with each answer as it arrives (None: answers are queued for ``answers``)."""
        self.finished = False

    @property
    def sent(self) -> int:
        """Requests sent (or refused at once by their node)."""
        return len(self._slots)

    def start(self, payload_of: PayloadOf) -> None:
        """Send every node its request (per ``payload_of``); a node that cannot
        take it (not connected, request too large) answers with its error at once.

        Raises:
            RuntimeError: called outside the event loop of the nodes' channels.
        """
        streaming = self._spec.kind == "stream"
        self._sending = True
        try:
            for node in self.nodes:
                payload = payload_of(node)
                if payload is not None:
                    self._send(node, payload, streaming)
        except BaseException:
            self.finish()
            raise
        self._sending = False
        if self._spec.deadline is not None and self._outstanding:
            self._timer = self._loop.call_at(self._spec.deadline, self._expire)
        elif not self._outstanding:
            self._end()

    def _send(self, node: Target, payload: bytes, streaming: bool) -> None:
        index = len(self._slots)
        slot = _Slot(node)
        self._slots.append(slot)
        spec = self._spec
        entries, slot.span = self._trace.request(node, spec.metadata)
        channel = node.channel
        try:
            if channel is None or channel.closed:
                raise unavailable(node.id)
            slot.ticket = channel.request(
                spec.method, payload, entries, self, index, streaming=streaming
            )
        except CallError as error:
            self._record(slot, error)
            self._emit(NodeReply(node.id, None, error))
            return
        slot.channel = channel
        slot.open = True
        self._outstanding += 1

    def cast(self, payload_of: PayloadOf) -> tuple[int, ...]:
        """Send a one-way request to every node that can take it now; return their IDs.

        A node that could not take it (disconnected, its send buffer full)
        has that failure as its ``last_error``.

        Raises:
            RuntimeError: called outside the event loop of the nodes' channels.
        """
        spec = self._spec
        sent = []
        for node in self.nodes:
            payload = payload_of(node)
            if payload is None:
                continue
            entries, span = self._trace.request(node, spec.metadata)
            channel = node.channel
            try:
                if (
                    channel is None
                    or channel.closed
                    or not channel.cast(spec.method, payload, entries)
                ):
                    raise _not_sent(node.id)
            except CallError as error:
                self._trace.answered(node, span, error)
                continue
            sent.append(node.id)
            if span is not None:
                span.end()
        self.finished = True
        return tuple(sent)

    # --- the channels' ReplySink ----------------------------------------------------

    def deliver(self, index: int, message: Message) -> None:
        """A reply to the request of slot ``index``."""
        slot = self._slots[index]
        if not slot.open:
            return
        node_id = slot.node.id
        try:
            value, error = decode_reply(message, self._reply_type, node_id), None
        except CallError as bad:
            value, error = None, bad
        size = 0
        if self._spec.kind == "unary" or error is not None:
            self._close(slot)
        elif self.on_answer is None:
            size = message.ByteSize() + QUEUED_OVERHEAD
            if slot.unread + size > STREAM_REPLY_LIMIT:
                self._close(slot)  # its replies stop here, with an error saying why
                self._emit(NodeReply(node_id, None, _too_many_unread(node_id)))
                return
            slot.unread += size
        self._record(slot, error)
        self._emit(NodeReply(node_id, value, error), slot, size)

    def fail(self, index: int, error: CallError) -> None:
        """The request of slot ``index`` failed, or its stream ended."""
        slot = self._slots[index]
        if not slot.open:
            return
        self._close(slot)
        if slot.answered and self._spec.kind == "stream":
            self._check_end()  # a node that replied and whose stream then ended is done
            return
        self._record(slot, error)
        self._emit(NodeReply(slot.node.id, None, error))

    # --- consuming ------------------------------------------------------------------

    async def next_answer(self) -> NodeReply[R] | None:
        """The next answer, as it arrives; None once every node has answered
        (unary) or ended (server streaming), or at the deadline."""
        queue = self._queue
        while not queue:
            if self._ended:
                return None
            self._waiter = self._loop.create_future()
            await self._waiter
        answer, slot, size = queue.popleft()
        if slot is not None:
            slot.unread -= size
        return answer

    def finish(self) -> None:
        """The consumer is done: give up what is unanswered (a unary call first
        listens for late replies until its deadline, at most ``LATE_REPLIES`` s)."""
        if self.finished:
            return
        self.finished = True
        if not self._outstanding:
            self._cancel_timer()
            return
        if self._spec.kind != "unary":
            self._cancel_timer()
            self._abandon()
            return
        for slot in self._slots:  # what was never sent gets no late reply
            if slot.open and slot.channel is not None and slot.channel.withdraw(slot.ticket):
                self._give_up(slot, forget=False)
                CallTrace.abandoned(slot.span)
                slot.answered = True
        if not self._outstanding:
            self._cancel_timer()
            return
        late = self._loop.time() + LATE_REPLIES
        deadline = self._spec.deadline
        if deadline is not None and deadline <= late and self._timer is not None:
            return  # the deadline timer gives up what is still silent then
        self._cancel_timer()
        self._timer = self._loop.call_at(late, self._abandon)

    # --- inside -----------------------------------------------------------------------

    def _record(self, slot: _Slot, error: CallError | None) -> None:
        """A request's first answer: the node's latency, the request's span."""
        if not slot.answered:
            slot.answered = True
            self._trace.answered(slot.node, slot.span, error)

    def _emit(self, answer: NodeReply[R], slot: _Slot | None = None, size: int = 0) -> None:
        if self.finished:
            return  # a late reply: recorded, not delivered
        on_answer = self.on_answer
        if on_answer is not None:
            on_answer(answer)
        else:
            self._queue.append((answer, slot, size))
            self._wake()
        if not self._outstanding and not self._ended and not self._sending:
            self._end()

    def _close(self, slot: _Slot) -> None:
        """A request is done: answered (unary), failed, or its stream ended."""
        slot.open = False
        self._outstanding -= 1
        if self._spec.kind == "stream" and slot.channel is not None:
            slot.channel.forget(slot.ticket)
        if self.finished and not self._outstanding:
            self._cancel_timer()  # the last late reply came in

    def _check_end(self) -> None:
        if not self._outstanding and not self._ended:
            self._end()

    def _end(self) -> None:
        self._ended = True
        if not self.finished:
            self._cancel_timer()
        self._wake()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _expire(self) -> None:
        """The deadline: each node still silent answers ``DEADLINE_EXCEEDED``
        (a server-streaming call just ends)."""
        self._timer = None
        if self.finished:
            self._abandon()
            return
        for slot in self._slots:
            if not slot.open:
                continue
            self._give_up(slot)
            if self._spec.kind == "unary":
                error = timed_out(slot.node.id, self._spec.timeout)
                self._record(slot, error)
                self._emit(NodeReply(slot.node.id, None, error))
        self._end()

    def _abandon(self) -> None:
        """Give up every request still open."""
        self._timer = None
        for slot in self._slots:
            if slot.open:
                self._give_up(slot)
                if not slot.answered:
                    slot.answered = True
                    CallTrace.abandoned(slot.span)

    def _give_up(self, slot: _Slot, *, forget: bool = True) -> None:
        slot.open = False
        self._outstanding -= 1
        if forget and slot.channel is not None:
            slot.channel.forget(slot.ticket)


def _not_sent(node_id: int) -> CallError:
    return CallError(
        grpc.StatusCode.UNAVAILABLE, "not sent: disconnected or send buffer full", node_id
    )


def _too_many_unread(node_id: int) -> CallError:
    return CallError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"more than {STREAM_REPLY_LIMIT} bytes of replies were not read",
        node_id,
    )
