"""PeerIdentityInterceptor: identify every caller, register streaming peers."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import grpc
from grpc import aio

from gorums_mw._errors import InvalidAddressError, abort_with
from gorums_mw._identity.claims import (
    Claim,
    parse_claim,
)
from gorums_mw._identity.peer import bind_peer
from gorums_mw._identity.registrar import Cleanup, PeerRegistrar
from gorums_mw._wire import BATCHED_NODE_STREAM_PATH, NODE_STREAM_PATH

NODE_STREAM_METHOD: Final = NODE_STREAM_PATH
"""The grpc path of the NodeStream RPC, registered by default."""

STREAM_METHODS: Final = (NODE_STREAM_PATH, BATCHED_NODE_STREAM_PATH)
"""The streaming methods whose callers are registered by default: NodeStream
and its batched form."""

_NOT_INTERCEPTED: Final = object()
_claim: contextvars.ContextVar[Claim | InvalidAddressError | object | None] = (
    contextvars.ContextVar("gorums_claim", default=_NOT_INTERCEPTED)
)
"""The claim of the call being handled; set by the interceptor for every call."""

Behavior: TypeAlias = "Callable[[Any, aio.ServicerContext[Any, Any]], Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


if TYPE_CHECKING:  # grpc-stubs makes these generic; grpc's runtime classes are not
    _ServerInterceptor = aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = aio.ServerInterceptor


class PeerIdentityInterceptor(_ServerInterceptor):
    """Identifies the caller of every RPC; registers streaming peers.

    Attach it to an existing ``grpc.aio`` server; servicers need no change.
    For every call that claims an identity (``gorums-addr``, or Go Gorums'
    ``gorums-node-id``) it checks the claim against the connection
    (``UNAUTHENTICATED`` on a mismatch, ``INVALID_ARGUMENT`` on a malformed
    or inconsistent value) and binds the caller, so ``current_peer()`` inside
    the handler returns it. Calls without a claim pass straight through,
    untouched. For the streaming methods named in
    ``register_methods``, it also registers the caller as a connected peer
    for the lifetime of the stream.

    Works for unary and streaming handlers written as coroutines or async
    generators (including coroutines that use ``context.read()`` and
    ``context.write()``). Plain ``def`` handlers are passed through
    unwrapped: use ``manager.peer(context)`` in them.
    """

    def __init__(
        self, registrar: PeerRegistrar, *, register_methods: Iterable[str] = STREAM_METHODS
    ) -> None:
        """Create the interceptor.

        Args:
            registrar: identifies and registers peers (an ``InboundManager``).
            register_methods: grpc paths (``/pkg.Service/Method``) of streaming
                methods whose callers are registered while the stream is open.
        """
        if isinstance(register_methods, str):
            raise TypeError("register_methods takes an iterable of method paths, not one string")
        self._registrar = registrar
        self._register = frozenset(register_methods)
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def intercept_service(  # type: ignore[override]  # grpc.aio awaits what it returns
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Awaitable[Handler | None]:
        """Wrap the handler of a call that claims an identity or registers.

        Raises:
            TypeError: on a synchronous ``grpc.server`` (grpc then answers
                the call ``UNKNOWN`` at once; it cannot be refused earlier,
                as grpc does not check the interceptors it is given).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise TypeError(
                "PeerIdentityInterceptor works with grpc.aio servers only; this call comes"
                " from a synchronous grpc.server(): use grpc.aio.server(interceptors=[...])"
            ) from None
        return self._intercept(continuation, handler_call_details)

    async def _intercept(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        claim: Claim | InvalidAddressError | None = None
        if metadata:
            try:
                claim = parse_claim(metadata)
            except InvalidAddressError as exc:  # refused in the handler, where it can abort
                claim = exc
        _claim.set(claim)
        if claim is None and method not in self._register:
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method in self._register)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: Handler, register: bool) -> Handler:
        kind, behavior = _behavior(handler)
        if behavior is None:
            return handler
        if inspect.isasyncgenfunction(behavior):
            wrapped: Behavior = self._wrap_asyncgen(behavior, register)
        elif inspect.iscoroutinefunction(behavior):
            wrapped = self._wrap_coroutine(behavior, register)
        else:
            return handler
        return _FACTORIES[kind](
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap_coroutine(self, behavior: Behavior, register: bool) -> Behavior:
        if register:
            enter_stream = self._enter_stream

            async def registered(arg: Any, context: aio.ServicerContext[Any, Any]) -> Any:
                cleanup = await enter_stream(context)
                try:
                    return await behavior(arg, context)
                finally:
                    cleanup()

            return registered
        identify = self._registrar.identify

        async def identified(arg: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            claim = _claim.get()  # this wrapper serves calls that claim: never None here
            try:
                if isinstance(claim, InvalidAddressError):
                    raise claim
                bind_peer(identify(context, claim))  # type: ignore[arg-type]
            except Exception as exc:
                await abort_with(context, exc)
            return await behavior(arg, context)

        return identified

    def _wrap_asyncgen(self, behavior: Behavior, register: bool) -> Behavior:
        enter = self._enter_stream if register else self._enter_call

        async def identified(
            arg: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            cleanup = await enter(context)
            try:
                async for response in behavior(arg, context):
                    yield response
            finally:
                cleanup()

        return identified

    async def _enter_call(self, context: aio.ServicerContext[Any, Any]) -> Cleanup:
        claim = _claim.get()
        try:
            if isinstance(claim, InvalidAddressError):
                raise claim
            bind_peer(self._registrar.identify(context, claim))  # type: ignore[arg-type]
        except Exception as exc:
            await abort_with(context, exc)
        return _nothing

    async def _enter_stream(self, context: aio.ServicerContext[Any, Any]) -> Cleanup:
        try:
            cleanup = self._registrar.handle_stream(context)
            bind_peer(self._registrar.peer(context))
        except Exception as exc:
            await abort_with(context, exc)
        return _nothing if cleanup is None else cleanup


def _nothing() -> None:
    """The cleanup of a call that registered nothing."""


def interceptor_ran() -> bool:
    """Whether a ``PeerIdentityInterceptor`` saw the call being handled."""
    return _claim.get() is not _NOT_INTERCEPTED


_FACTORIES: Final[dict[str, Callable[..., Handler]]] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def _behavior(handler: Handler) -> tuple[str, Behavior | None]:
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behavior = getattr(handler, kind)
        if behavior is not None:
            return kind, behavior
    return "unary_unary", None
