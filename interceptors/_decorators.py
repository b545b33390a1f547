"""Handler decorators: receive the calling peer, or admit replicas only.

Both work on unary and streaming servicer methods written as coroutines or
async generators, and keep the kind they wrap (grpc picks how to run a
handler from its function type). They only wrap; nothing is registered.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from gorums_mw._identity.peer import UNKNOWN_PEER, Peer, current_peer

from ._server import interceptor_ran

F = TypeVar("F", bound=Callable[..., Any])


def with_peer(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Pass the calling ``Peer`` to ``handler`` as the keyword argument ``peer``.

    Example::

        class Store(StoreServicer):
            @with_peer
            async def Write(self, request, context, *, peer):
                log.info("write from node %d", peer.id)
    """
    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def stream_with_peer(*args: Any) -> AsyncIterator[Any]:
            async for item in handler(*args, peer=_identified_peer("with_peer")):
                yield item

        return stream_with_peer

    @functools.wraps(handler)
    async def call_with_peer(*args: Any) -> Any:
        return await handler(*args, peer=_identified_peer("with_peer"))

    return _check_async(handler, call_with_peer)


def replicas_only(handler: F) -> F:
    """Refuse callers that are not configured replicas with ``PERMISSION_DENIED``.

    External clients (ID 0) and client peers are refused before the handler
    runs. Needs ``PeerIdentityInterceptor`` on the server (or NodeStream).
    """
    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def stream_if_replica(*args: Any) -> AsyncIterator[Any]:
            await _deny_unless_replica(args[-1])
            async for item in handler(*args):
                yield item

        return stream_if_replica  # type: ignore[return-value]

    @functools.wraps(handler)
    async def call_if_replica(*args: Any) -> Any:
        await _deny_unless_replica(args[-1])
        return await handler(*args)

    return _check_async(handler, call_if_replica)  # type: ignore[return-value]


async def _deny_unless_replica(context: Any) -> None:
    peer = _identified_peer("replicas_only")
    if not peer.is_replica:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"only configured replicas may call this method (caller has ID {peer.id})",
        )


def _identified_peer(decorator: str) -> Peer:
    """The calling peer.

    Raises:
        RuntimeError: no ``PeerIdentityInterceptor`` saw this call (and it
            did not come over NodeStream), so the caller is unknown; grpc
            answers such a call ``UNKNOWN``.
    """
    peer = current_peer()
    if peer is UNKNOWN_PEER and not interceptor_ran():
        raise RuntimeError(
            f"{decorator}: no interceptor identified this call: add"
            " PeerIdentityInterceptor(manager) to the grpc.aio server's interceptors"
        )
    return peer


def _check_async(handler: Callable[..., Any], wrapper: Callable[..., Any]) -> Callable[..., Any]:
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler.__qualname__} must be an async def or async generator handler")
    return wrapper
