"""A node of a configuration: a stable handle for calls to one replica."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final, Protocol

import grpc
from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls import (
    Entries,
    R,
    call_entries,
    checked_method,
    deadline_of,
    decode_reply,
    timed_out,
)
from gorums_mw._errors import CallError
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream._replies import Replies
from gorums_mw._tracing import ATTR_METHOD, ATTR_PEER_ID, SPAN_RPC, Tracer

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
    fast with ``UNAVAILABLE`` while the replica is not connected.

    Attributes:
        id: the node ID.
        address: the node's normalized listening address (``""`` for a
            client peer, which has none).
    """

    __slots__ = ("_channel", "_tracer", "address", "id")

    def __init__(self, node_id: int, address: str, tracer: Tracer | None = None) -> None:
        self.id = node_id
        self.address = address
        self._tracer = tracer if tracer is not None else Tracer()
        self._channel: Channel | None = None

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

    def attach(self, channel: Channel | None) -> None:
        """Route calls through ``channel`` (None: the node is disconnected)."""
        self._channel = channel

    async def rpc(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
    ) -> R:
        """Call ``method`` on this node and return its reply.

        Args:
            method: the protobuf full method name, ``pkg.Service.Method``
                (or grpc's ``/pkg.Service/Method``).
            request: the request message.
            reply_type: the generated class of the reply.
            timeout: seconds for the whole call, including any wait for room
                in the send buffer; None waits until the stream ends.

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
        name = checked_method(method, request, reply_type)
        deadline = deadline_of(timeout)
        with self._tracer.tracer.start_as_current_span(SPAN_RPC) as span:
            recording = span.is_recording()
            if recording:
                span.set_attributes({ATTR_METHOD: name, ATTR_PEER_ID: self.id})
            reply = self.send_request(name, request.SerializeToString(), call_entries(recording))
            try:
                async with asyncio.timeout_at(deadline):
                    message = await reply
            except TimeoutError:
                raise timed_out(self.id, timeout) from None
            finally:
                reply.cancel()
            return decode_reply(message, reply_type, self.id)

    async def correctable(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
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
        name = checked_method(method, request, reply_type, "server_streaming")
        deadline = deadline_of(timeout)
        replies = Replies(STREAM_REPLY_LIMIT)
        self.send_stream(name, request.SerializeToString(), (), replies, self.id)
        try:
            while True:
                try:
                    _, item = await replies.get(deadline)
                except TimeoutError:
                    return
                if isinstance(item, CallError):
                    raise item
                yield decode_reply(item, reply_type, self.id)
        finally:
            replies.close()

    async def unicast(self, method: str, request: ProtoMessage) -> bool:
        """Send ``method`` one-way to this node; never waits.

        Returns:
            Whether it was sent: False if the node is disconnected or its send
            buffer is full (the message is then dropped).

        Raises:
            ValueError, TypeError, RuntimeError: as ``rpc``.
        """
        name = checked_method(method, request, None)
        return self.cast(name, request.SerializeToString())

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
        channel = self._channel
        if channel is None or channel.closed:
            raise CallError(grpc.StatusCode.UNAVAILABLE, "node is not connected", self.id)
        return channel.call(method, payload, entries)

    def send_stream(
        self, method: str, payload: bytes, entries: Entries, replies: Replies, key: int
    ) -> None:
        """Send a request to a server-streaming method; its replies go to ``replies`` under ``key``.

        Raises:
            CallError: as ``send_request``.
        """
        channel = self._channel
        if channel is None or channel.closed:
            raise CallError(grpc.StatusCode.UNAVAILABLE, "node is not connected", self.id)
        channel.call_stream(method, payload, entries, replies, key)

    def cast(self, method: str, payload: bytes, entries: Entries = ()) -> bool:
        """Send a one-way request if there is room now; return whether it was sent."""
        channel = self._channel
        if channel is None or channel.closed:
            return False
        try:
            return channel.cast(method, payload, entries)
        except CallError:
            return False
