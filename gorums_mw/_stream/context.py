"""``NodeStreamContext``: what a servicer method sees as its context over NodeStream."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

import grpc

from gorums_mw._identity.peer import Peer
from gorums_mw._proto.stream_pb2 import Message

Metadata = tuple[tuple[str, str], ...]
MetadataIn = Sequence[tuple[str, str | bytes]]


class HandlerAborted(Exception):
    """Raised by ``NodeStreamContext.abort``; ``HandlerRegistry.handle`` turns it into a reply."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class NodeStreamContext:
    """Stands in for ``grpc.aio.ServicerContext`` when a method is called over NodeStream.

    It offers what unary handlers use: status (``abort``, ``set_code``,
    ``set_details``), the caller's metadata (the request's entries) and
    ``peer()``. A NodeStream call has no deadline of its own, no trailers on
    the wire and no per-call compression, so ``time_remaining()`` is None,
    trailing metadata is kept but not sent, and the compression setters do
    nothing. As in grpc.aio, ``abort`` is a coroutine: a plain ``def``
    handler uses ``set_code``/``set_details`` and returns or raises instead.
    One context serves one call; it is not shared between tasks.
    """

    __slots__ = ("_code", "_details", "_peer", "_request", "_trailing_metadata", "writer")

    def __init__(self, request: Message, peer: Peer) -> None:
        """Create the context of one call.

        Args:
            request: the NodeStream request being answered.
            peer: the node that sent it.
        """
        self._request = request
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing_metadata: tuple[tuple[str, str | bytes], ...] = ()
        self.writer: Callable[[Any], None] | None = None
        """Sends one response of a server-streaming call (None for unary calls)."""

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: MetadataIn = (),
    ) -> NoReturn:
        """End the call with a non-OK status; the reply carries ``code`` and ``details``.

        As in grpc.aio, empty ``details`` keeps details set earlier, and the
        status stands even if the handler catches the exception.

        Args:
            code: the status code; ``OK`` is not allowed and becomes ``UNKNOWN``.
            details: the status message.
            trailing_metadata: kept, see ``trailing_metadata()``.

        Raises:
            Exception: always, to stop the handler; do not catch it.
        """
        if code is grpc.StatusCode.OK:
            code = grpc.StatusCode.UNKNOWN
        self._code = code
        if details or not self._details:
            self._details = details
        if trailing_metadata:
            self.set_trailing_metadata(trailing_metadata)
        raise HandlerAborted(code, self._details)

    async def write(self, message: Any) -> None:
        """Send one response of a server-streaming call, as grpc.aio's ``write``.

        Raises:
            RuntimeError: the call is not server-streaming.
        """
        if self.writer is None:
            raise RuntimeError("write() is for server-streaming methods")
        self.writer(message)

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        """End the call with ``status`` (its ``code``, ``details`` and trailing metadata).

        Raises:
            Exception: always, as ``abort`` does.
        """
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        """Set the status the reply carries once the handler returns."""
        self._code = code

    def set_details(self, details: str) -> None:
        """Set the status message the reply carries."""
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        """The status code set so far, or None if none was set."""
        return self._code

    def details(self) -> str:
        """The status message set so far (``""`` if none)."""
        return self._details

    def invocation_metadata(self) -> Metadata:
        """The request's metadata entries, as ``(key, value)`` pairs in order."""
        return tuple((entry.key, entry.value) for entry in self._request.entry)

    def peer(self) -> str:
        """grpc's peer string for the caller's connection, e.g. ``ipv4:127.0.0.1:50000``."""
        return self._peer.real_address

    def peer_identities(self) -> Iterable[bytes] | None:
        """None: NodeStream calls carry no per-call authentication."""
        return None

    def peer_identity_key(self) -> str | None:
        """None: NodeStream calls carry no per-call authentication."""
        return None

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        """An empty mapping: NodeStream calls carry no per-call authentication."""
        return {}

    def time_remaining(self) -> float | None:
        """None: NodeStream calls have no deadline of their own."""
        return None

    def set_trailing_metadata(self, trailing_metadata: MetadataIn) -> None:
        """Keep trailing metadata; NodeStream replies do not carry it."""
        self._trailing_metadata = tuple((key, value) for key, value in trailing_metadata)

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        """The trailing metadata set so far."""
        return self._trailing_metadata

    async def send_initial_metadata(self, initial_metadata: MetadataIn) -> None:
        """Do nothing: NodeStream replies have no initial metadata."""

    def set_compression(self, compression: grpc.Compression) -> None:
        """Do nothing: the stream's compression applies to every message."""

    def disable_next_message_compression(self) -> None:
        """Do nothing: the stream's compression applies to every message."""

    def cancelled(self) -> bool:
        """False: a cancelled call stops the handler's task instead."""
        return False

    def done(self) -> bool:
        """False: the context is only reachable while its handler runs."""
        return False

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """Do nothing: callbacks are never called for NodeStream calls.

        Code that must run when the call ends belongs in the handler's own
        ``try``/``finally``.
        """
