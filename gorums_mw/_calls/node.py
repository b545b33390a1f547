"""A node of a configuration: a stable handle for calls to one replica."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Final, Protocol

import grpc
from google.protobuf.message import Message as ProtoMessage
from opentelemetry.util.types import AttributeValue

from gorums_mw._calls.common import (
    Entries,
    R,
    checked_metadata,
    checked_method,
    deadline_of,
    decode_reply,
    timed_out,
)
from gorums_mw._calls.trace import CallTrace
from gorums_mw._errors import CallError
from gorums_mw._lifecycle import Lifecycle
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.replies import Replies
from gorums_mw._telemetry import (
    ATTR_PEER_ID,
    SPAN_CORRECTABLE,
    SPAN_RPC,
    SPAN_UNICAST,
    Telemetry,
)

EWMA_WEIGHT: Final = 0.2
"""Weight of the newest reply in ``Node.latency``."""

STREAM_REPLY_LIMIT: Final = 8 * 1024 * 1024
"""Bytes of replies a correctable call may hold unread before it fails."""


class Channel(Protocol):
    """What a node sends calls through: a NodeStream end or an in-process
    dispatcher. Both belong to one event loop and refuse calls from others."""

    @property
    def closed(self) -> bool:
        """Whether calls can no longer be sent."""
        ...

    def call(self, method: str, payload: bytes, entries: Entries = ()) -> asyncio.Future[Message]:
        """Send a request now (or once there is room); return the future of its reply."""
        ...

    def call_stream(
        self, method: str, payload: bytes, entries: Entries, replies: Replies, key: int
    ) -> None:
        """Send a request to a server-streaming method; its replies go to ``replies``."""
        ...

    def cast(self, method: str, payload: bytes, entries: Entries = ()) -> bool:
        """Send a one-way request if there is room now; return whether it was sent."""
        ...


class Node:
    """One replica that calls can be made to.

    A node is a stable handle: it stays valid across reconnects of the
    replica (calls use whichever stream currently connects it) and fails
    fast with ``UNAVAILABLE`` while the replica is not connected. It keeps
    two facts about the calls made to it, the same numbers the metrics
    record, to sort and choose nodes by: ``latency`` and ``last_error``.

    Attributes:
        id: the node ID.
        address: the node's configured listening address (``""`` for a
            client peer, which has none).
    """

    __slots__ = ("_channel", "_last_error", "_latency", "_owner", "_telemetry", "address", "id")

    def __init__(
        self,
        node_id: int,
        address: str,
        telemetry: Telemetry | None = None,
        owner: Lifecycle | None = None,
    ) -> None:
        self.id = node_id
        self.address = address
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._owner = owner
        self._channel: Channel | None = None
        self._latency: float | None = None
        self._last_error: CallError | None = None

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<Node id={self.id} address={self.address!r} {state}>"

    @property
    def connected(self) -> bool:
        """Whether a stream to the node is up."""
        channel = self._channel
        return channel is not None and not channel.closed

    @property
    def channel(self) -> Channel | None:
        """What calls to the node currently go through."""
        return self._channel

    @property
    def latency(self) -> float | None:
        """Smoothed seconds from a request to its reply (an EWMA, weight 0.2 on
        the newest reply, as Go Gorums), or None before the first reply."""
        return self._latency

    @property
    def last_error(self) -> CallError | None:
        """How the most recent call to the node failed; None if it succeeded."""
        return self._last_error

    @property
    def metric_attributes(self) -> dict[str, AttributeValue]:
        """The attributes of this node's per-node metrics."""
        return _peer_attributes(self.id)

    def require_started(self) -> None:
        """Raise unless the ``System`` or manager whose streams reach this node runs.

        Raises:
            RuntimeError: it was never started, or has stopped.
        """
        if self._owner is not None:
            self._owner.require_started()

    def attach(self, channel: Channel | None) -> None:
        """Route calls through ``channel`` (None: the node is disconnected)."""
        self._channel = channel

    def observe(self, elapsed: float, error: CallError | None) -> None:
        """Record how a call to the node went: ``elapsed`` seconds to its reply, or ``error``."""
        self._last_error = error
        if error is None:
            latency = self._latency
            self._latency = (
                elapsed if latency is None else latency + EWMA_WEIGHT * (elapsed - latency)
            )

    async def rpc(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        metadata: Entries = (),
    ) -> R:
        """Call ``method`` on this node and return its reply.

        Args:
            method: the protobuf full method name, ``pkg.Service.Method``
                (or grpc's ``/pkg.Service/Method``).
            request: the request message.
            reply_type: the generated class of the reply.
            timeout: seconds for the whole call, including any wait for room
                in the send buffer; None waits until the stream ends.
            metadata: ``(key, value)`` entries sent with the request (the
                handler reads them as its invocation metadata).

        Raises:
            CallError: the node is not connected or the stream ended
                (``UNAVAILABLE``), the timeout passed (``DEADLINE_EXCEEDED``),
                the request is too large (``RESOURCE_EXHAUSTED``), or the
                handler failed (its status).
            ValueError: ``method`` is malformed or unknown to its service.
            TypeError: the request or reply type is not the method's (when
                its service is known locally).
            RuntimeError: called outside the event loop of the node's stream.
        """
        self.require_started()
        name = checked_method(method, request, reply_type)
        deadline = deadline_of(timeout)
        entries = checked_metadata(metadata)
        with CallTrace(self._telemetry, SPAN_RPC, "rpc", name, {ATTR_PEER_ID: self.id}) as call:
            error: CallError | None = None
            try:
                reply = self.send_request(
                    name, request.SerializeToString(), call.entries(self, entries)
                )
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await reply
                except TimeoutError:
                    raise timed_out(self.id, timeout) from None
                finally:
                    reply.cancel()
                return decode_reply(message, reply_type, self.id)
            except CallError as exc:
                error = exc
                raise
            finally:
                call.node_done(self, error)
                call.finish()

    async def correctable(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        metadata: Entries = (),
    ) -> AsyncIterator[R]:
        """Call a server-streaming method on this node; yield each reply as it arrives.

        Go Gorums' correctable calls: the node sends several replies under
        one request. Nothing on the wire marks the last one (as upstream), so
        the iteration ends when ``timeout`` passes or when you stop iterating
        (give a timeout, or break once you have what you need).

        Raises:
            CallError: the node sent an error, is not connected, or its
                stream ended (``UNAVAILABLE``).
            ValueError, TypeError, RuntimeError: as ``rpc`` (raised at the
                first iteration).
        """
        self.require_started()
        name = checked_method(method, request, reply_type, "server_streaming")
        deadline = deadline_of(timeout)
        entries = checked_metadata(metadata)
        peer = {ATTR_PEER_ID: self.id}
        replies = Replies(STREAM_REPLY_LIMIT)
        received = 0
        with CallTrace(self._telemetry, SPAN_CORRECTABLE, "correctable", name, peer) as call:
            try:
                payload = request.SerializeToString()
                self.send_stream(name, payload, call.entries(self, entries), replies, self.id)
                while True:
                    try:
                        arrival = await replies.get(deadline)
                    except TimeoutError:
                        return
                    if arrival is None:
                        return
                    item = arrival[1]
                    if isinstance(item, CallError):
                        call.node_done(self, item)
                        raise item
                    call.node_done(self, None)
                    received += 1
                    yield decode_reply(item, reply_type, self.id)
            finally:
                replies.close()
                call.finish(replies=received)

    async def unicast(self, method: str, request: ProtoMessage, *, metadata: Entries = ()) -> bool:
        """Send ``method`` one-way to this node; never waits.

        Returns:
            Whether it was sent: False if the node is disconnected or its send
            buffer is full (the message is then dropped).

        Raises:
            ValueError, TypeError, RuntimeError: as ``rpc``.
        """
        self.require_started()
        name = checked_method(method, request, None)
        entries = checked_metadata(metadata)
        with CallTrace(
            self._telemetry, SPAN_UNICAST, "unicast", name, {ATTR_PEER_ID: self.id}
        ) as call:
            sent = self.cast(name, request.SerializeToString(), call.entries(self, entries))
            call.node_done(self, None if sent else _not_sent(self.id))
            call.finish(sent=int(sent))
            return sent

    def send_request(
        self, method: str, payload: bytes, entries: Entries = ()
    ) -> asyncio.Future[Message]:
        """Send a request (a full method name, already checked); return the future of its reply.

        Cancel the future to give up; a request still waiting for room in
        the send buffer is then never sent.

        Raises:
            CallError: ``UNAVAILABLE`` when the node is not connected,
                ``RESOURCE_EXHAUSTED`` when the request is too large.
        """
        return self._connected_channel().call(method, payload, entries)

    def send_stream(
        self, method: str, payload: bytes, entries: Entries, replies: Replies, key: int
    ) -> None:
        """Send a request to a server-streaming method; its replies go to ``replies`` under ``key``.

        Raises:
            CallError: as ``send_request``.
        """
        self._connected_channel().call_stream(method, payload, entries, replies, key)

    def _connected_channel(self) -> Channel:
        channel = self._channel
        if channel is None or channel.closed:
            raise CallError(grpc.StatusCode.UNAVAILABLE, "node is not connected", self.id)
        return channel

    def cast(self, method: str, payload: bytes, entries: Entries = ()) -> bool:
        """Send a one-way request if there is room now; return whether it was sent."""
        channel = self._channel
        if channel is None or channel.closed:
            return False
        try:
            return channel.cast(method, payload, entries)
        except CallError:
            return False


@functools.lru_cache(maxsize=4096)
def _peer_attributes(node_id: int) -> dict[str, AttributeValue]:
    return {ATTR_PEER_ID: node_id}


def _not_sent(node_id: int) -> CallError:
    return CallError(
        grpc.StatusCode.UNAVAILABLE, "not sent: disconnected or send buffer full", node_id
    )
