"""A node of a configuration: a stable handle for calls to one replica."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Final, Protocol, TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage
from opentelemetry import propagate

from gorums_mw._errors import CallError
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._tracing import ATTR_METHOD, ATTR_PEER_ID, SPAN_RPC, Tracer

R = TypeVar("R", bound=ProtoMessage)

Entries = Sequence[tuple[str, str]]

_CODES: Final[Mapping[int, grpc.StatusCode]] = {code.value[0]: code for code in grpc.StatusCode}


class Channel(Protocol):
    """What a node sends calls through: a NodeStream end or an in-process
    dispatcher."""

    @property
    def closed(self) -> bool:
        """Whether calls can no longer be sent."""
        ...

    def call(
        self, method: str, payload: bytes, entries: Entries = ()
    ) -> Awaitable[asyncio.Future[Message]]:
        """Send a request; the awaitable gives the future of the reply."""
        ...

    def cast(self, method: str, payload: bytes, entries: Entries = ()) -> Awaitable[None]:
        """Send a one-way request."""
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
            method: the protobuf full method name, ``pkg.Service.Method``.
            request: the request message.
            reply_type: the generated class of the reply.
            timeout: seconds to wait for the reply; None waits until the
                stream ends.

        Raises:
            CallError: the node is not connected or the stream ended
                (``UNAVAILABLE``), the timeout passed (``DEADLINE_EXCEEDED``),
                or the handler failed (its status).
        """
        with self._tracer.tracer.start_as_current_span(SPAN_RPC) as span:
            entries: list[tuple[str, str]] = []
            if span.is_recording():
                span.set_attributes({ATTR_METHOD: method, ATTR_PEER_ID: self.id})
                entries = trace_entries()
            reply = await self.start(method, request.SerializeToString(), entries)
            try:
                async with asyncio.timeout(timeout):
                    message = await reply
            except TimeoutError:
                raise CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "timed out", self.id) from None
            finally:
                reply.cancel()
            return decode_reply(message, reply_type, self.id)

    async def start(
        self, method: str, payload: bytes, entries: Entries = ()
    ) -> asyncio.Future[Message]:
        """Send a request; return the future of its reply message.

        Raises:
            CallError: ``UNAVAILABLE`` when the node is not connected.
        """
        channel = self._channel
        if channel is None or channel.closed:
            raise CallError(grpc.StatusCode.UNAVAILABLE, "node is not connected", self.id)
        return await channel.call(method, payload, entries)

    async def cast(self, method: str, payload: bytes, entries: Entries = ()) -> bool:
        """Send a one-way request; return whether the node was connected."""
        channel = self._channel
        if channel is None or channel.closed:
            return False
        try:
            await channel.cast(method, payload, entries)
        except CallError:
            return False
        return True


def decode_reply(message: Message, reply_type: type[R], node_id: int) -> R:
    """The reply payload as ``reply_type``, or the ``CallError`` its status names."""
    if message.HasField("status") and message.status.code != 0:
        code = _CODES.get(message.status.code, grpc.StatusCode.UNKNOWN)
        raise CallError(code, message.status.message, node_id)
    try:
        return reply_type.FromString(message.payload)
    except Exception as exc:  # protobuf raises DecodeError and others
        raise CallError(grpc.StatusCode.INTERNAL, f"bad reply payload: {exc}", node_id) from exc


def trace_entries() -> list[tuple[str, str]]:
    """The current trace context as message metadata entries."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())
