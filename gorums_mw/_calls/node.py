"""A node of a configuration: a stable handle for calls to one replica."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls.answers import NodeReply, R
from gorums_mw._calls.fanout import Fanout
from gorums_mw._calls.iteration import answers_of
from gorums_mw._calls.spec import CallSpec
from gorums_mw._calls.trace import CallTrace
from gorums_mw._errors import CallError
from gorums_mw._lifecycle import Lifecycle
from gorums_mw._stream.channel import Channel, Entries
from gorums_mw._telemetry import (
    SPAN_CORRECTABLE,
    SPAN_RPC,
    SPAN_UNICAST,
    Telemetry,
)

EWMA_WEIGHT: Final = 0.2
"""Weight of the newest reply in ``Node.latency``."""


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
            RuntimeError: the manager of this node's streams is not started,
                or called outside the event loop of the node's stream.
        """
        self.require_started()
        spec = CallSpec.of(method, request, reply_type, metadata=metadata, timeout=timeout)
        with CallTrace(self._telemetry, SPAN_RPC, "rpc", spec.method, peer=self.id) as trace:
            fanout = Fanout((self,), spec, trace, reply_type)
            answered: asyncio.Future[NodeReply[R]] = asyncio.get_running_loop().create_future()
            fanout.on_answer = answered.set_result
            try:
                payload = request.SerializeToString()
                fanout.start(lambda _: payload)
                answer = await answered
            finally:
                fanout.finish()
            if answer.error is not None:
                raise answer.error
            return answer.value  # type: ignore[return-value]  # a reply without an error

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
            ValueError: as ``rpc`` (raised at the first iteration).
            TypeError: as ``rpc`` (raised at the first iteration).
            RuntimeError: as ``rpc`` (raised at the first iteration).
        """
        self.require_started()
        spec = CallSpec.of(
            method, request, reply_type, kind="stream", metadata=metadata, timeout=timeout
        )
        received = 0
        with CallTrace(
            self._telemetry, SPAN_CORRECTABLE, "correctable", spec.method, peer=self.id
        ) as trace:
            payload = request.SerializeToString()
            answers = answers_of(Fanout((self,), spec, trace, reply_type), lambda _: payload)
            try:
                async for answer in answers:
                    if answer.error is not None:
                        raise answer.error
                    received += 1
                    yield answer.value  # type: ignore[misc]  # a reply without an error
            finally:
                await answers.aclose()
                trace.finish(replies=received)

    async def unicast(self, method: str, request: ProtoMessage, *, metadata: Entries = ()) -> bool:
        """Send ``method`` one-way to this node; never waits.

        Returns:
            Whether it was sent: False if the node is disconnected or its send
            buffer is full (the message is then dropped).

        Raises:
            ValueError: as ``rpc``.
            TypeError: as ``rpc``.
            RuntimeError: as ``rpc``.
        """
        self.require_started()
        spec = CallSpec.of(method, request, None, kind="one_way", metadata=metadata)
        with CallTrace(
            self._telemetry, SPAN_UNICAST, "unicast", spec.method, peer=self.id
        ) as trace:
            payload = request.SerializeToString()
            sent = bool(Fanout((self,), spec, trace, ProtoMessage).cast(lambda _: payload))
            trace.finish(sent=int(sent))
            return sent
