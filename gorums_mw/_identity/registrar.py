"""The interceptor's view of "something that identifies and registers peers".

``gorums_mw.InboundManager`` implements it; any object with these methods
can be given to ``PeerIdentityInterceptor``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import grpc

from gorums_mw._identity.claims import Claim
from gorums_mw._identity.peer import Peer

Cleanup = Callable[[], None]
"""Undoes a registration; safe to call more than once."""


class PeerRegistrar(Protocol):
    """Identifies callers and registers the streams of connected peers.

    To refuse a caller, a method raises an exception with a ``code``
    attribute holding a ``grpc.StatusCode``; the interceptor aborts the call
    with that code and the exception's message.
    """

    def identify(self, context: grpc.aio.ServicerContext[Any, Any], claim: Claim) -> Peer:
        """Verify ``claim`` (parsed from the call's identity metadata) against
        the call's connection and return who the caller is."""
        ...

    def peer(self, context: object) -> Peer:
        """The peer a call is from (after ``identify`` or ``handle_stream``)."""
        ...

    def handle_stream(self, context: grpc.aio.ServicerContext[Any, Any]) -> Cleanup | None:
        """Identify the caller of a stream and register it as a connected
        peer; return the cleanup to run when the stream ends, or None for a
        caller that is not a known node."""
        ...
