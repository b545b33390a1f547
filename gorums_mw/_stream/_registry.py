"""``HandlerRegistry``: answers NodeStream requests with the methods of ordinary grpc servicers."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import grpc
from google.rpc.status_pb2 import Status
from opentelemetry import context as otel_context
from opentelemetry import propagate

from gorums_mw._peer import Peer, bind_peer, unbind_peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream._context import NodeStreamContext, _Abort

_log = logging.getLogger("gorums_mw")

_OK = grpc.StatusCode.OK
_UNKNOWN = grpc.StatusCode.UNKNOWN


class _Method(NamedTuple):
    """A method resolved once: what calling it over NodeStream needs."""

    behaviour: Callable[..., Any] | None  # None: not unary-unary, cannot be called
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    is_async: bool


class _CallDetails(grpc.HandlerCallDetails):
    """What a generic handler is asked to resolve: a method path, no metadata."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def _same(value: Any) -> Any:
    """The (de)serializer of a handler that has none: bytes pass through."""
    return value


class HandlerRegistry:
    """Collects the unary methods of ordinary grpc servicers so NodeStream requests can call them.

    It has the two methods generated ``add_XServicer_to_server(servicer,
    server)`` functions call on a server, so those functions register a
    servicer here unchanged::

        registry = HandlerRegistry()
        echo_pb2_grpc.add_EchoServicer_to_server(EchoServicer(), registry)

    A request names its method by protobuf full name (``pkg.Service.Method``);
    the first lookup of a name resolves it, registered handlers first, then
    generic handlers (asked for ``/pkg.Service/Method`` without metadata), and
    later lookups are a dict lookup. Only unary-unary methods can be called;
    streaming ones are answered ``UNIMPLEMENTED``.

    Add handlers from the event loop's thread (usually before serving);
    ``handle`` may run concurrently for any number of requests.
    """

    __slots__ = ("_generic", "_registered", "_resolved")

    def __init__(self) -> None:
        """Create an empty registry."""
        self._generic: list[grpc.GenericRpcHandler[Any, Any]] = []
        self._registered: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._resolved: dict[str, _Method] = {}

    def __repr__(self) -> str:
        return f"<HandlerRegistry methods={sorted(self._registered)} generic={len(self._generic)}>"

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        """Add generic handlers, asked in order after the registered methods.

        Args:
            generic_rpc_handlers: handlers whose ``service()`` maps a method
                path (``/pkg.Service/Method``) to a method handler. It is
                asked once per method name, so it must not choose by metadata.
        """
        self._generic.extend(generic_rpc_handlers)
        self._resolved.clear()

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Add the methods of one service; a method added again replaces the earlier one.

        Args:
            service_name: the service's full name, ``pkg.Service``.
            method_handlers: method handlers by method name (``Method``).
        """
        for method, handler in method_handlers.items():
            self._registered[f"{service_name}.{method}"] = handler
        self._resolved.clear()

    def methods(self) -> frozenset[str]:
        """The full names (``pkg.Service.Method``) of the methods added by service."""
        return frozenset(self._registered)

    async def handle(
        self, request: Message, peer: Peer, *, one_way: bool = False
    ) -> Message | None:
        """Call the method ``request`` names and build the reply.

        While the handler runs, ``current_peer()`` returns ``peer``, and the
        trace context in the request's entries is the current context, so
        spans the handler starts continue the caller's trace. Async handlers
        run in the calling task; plain functions run in a worker thread.

        Args:
            request: a NodeStream request.
            peer: the node that sent it.
            one_way: the sender wants no reply.

        Returns:
            The reply, with the request's sequence number and method and
            either the serialized response or a non-OK ``status``: an unknown
            or streaming method is ``UNIMPLEMENTED``, a payload that does not
            parse ``INVALID_ARGUMENT``, an abort its code and details, any
            other exception ``UNKNOWN`` (or the code the handler set) with
            ``"ExcType: message"``. None for a one-way request, whose errors
            are logged at debug level.

        Raises:
            asyncio.CancelledError: the calling task was cancelled; it is not
                turned into a reply.
        """
        name = request.method
        method = self._resolved.get(name)
        if method is None:
            try:
                method = self._resolve(name)
            except Exception as exc:
                return _fail(
                    request, peer, one_way, _UNKNOWN, f"resolving {name}: {_describe(exc)}"
                )
            if method is None:
                return _fail(
                    request, peer, one_way, grpc.StatusCode.UNIMPLEMENTED, f"unknown method {name}"
                )
        behaviour = method.behaviour
        if behaviour is None:
            return _fail(
                request,
                peer,
                one_way,
                grpc.StatusCode.UNIMPLEMENTED,
                f"{name} is a streaming method; only unary methods can be called over NodeStream",
            )
        try:
            message = method.deserialize(request.payload)
        except Exception as exc:
            return _fail(
                request,
                peer,
                one_way,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"cannot parse the {name} request: {_describe(exc)}",
            )

        context = NodeStreamContext(request, peer)
        peer_token = bind_peer(peer)
        trace_token = (
            otel_context.attach(propagate.extract({e.key: e.value for e in request.entry}))
            if request.entry
            else None
        )
        try:
            if method.is_async:
                reply = await behaviour(message, context)
            else:
                reply = await asyncio.to_thread(behaviour, message, context)
                if inspect.isawaitable(reply):  # a plain function returning a coroutine
                    reply = await reply
        except _Abort as exc:
            return _fail(request, peer, one_way, exc.code, exc.details)
        except Exception as exc:
            code = context.code()
            return _fail(
                request, peer, one_way, _UNKNOWN if code in (None, _OK) else code, _describe(exc)
            )
        finally:
            if trace_token is not None:
                otel_context.detach(trace_token)
            unbind_peer(peer_token)

        code = context.code()
        if code is not None and code is not _OK:
            return _fail(request, peer, one_way, code, context.details())
        if one_way:
            return None
        try:
            payload = method.serialize(reply)
        except Exception as exc:
            return _fail(
                request,
                peer,
                one_way,
                grpc.StatusCode.INTERNAL,
                f"cannot serialize the {name} reply: {_describe(exc)}",
            )
        return Message(message_seq_no=request.message_seq_no, method=name, payload=payload)

    def _resolve(self, name: str) -> _Method | None:
        """Find the handler of ``name`` and cache what calling it needs."""
        handler = self._registered.get(name)
        if handler is None and self._generic:
            service, dot, method = name.rpartition(".")
            if dot and service and method:
                details = _CallDetails(f"/{service}/{method}")
                for generic in self._generic:
                    handler = generic.service(details)
                    if handler is not None:
                        break
        if handler is None:
            return None  # not cached: unknown names must not grow the cache
        unary = not handler.request_streaming and not handler.response_streaming
        behaviour = handler.unary_unary if unary else None
        resolved = _Method(
            behaviour,
            handler.request_deserializer or _same,
            handler.response_serializer or _same,
            behaviour is not None and inspect.iscoroutinefunction(behaviour),
        )
        self._resolved[name] = resolved
        return resolved


def _describe(exc: BaseException) -> str:
    """``ExcType: message``, the details of a reply for an exception."""
    return f"{type(exc).__name__}: {exc}"


def _fail(
    request: Message, peer: Peer, one_way: bool, code: grpc.StatusCode, details: str
) -> Message | None:
    """The error reply to ``request``, or None (after a debug log) if it is one-way."""
    if one_way:
        _log.debug(
            "one-way %s from node %d failed: %s: %s", request.method, peer.id, code.name, details
        )
        return None
    return Message(
        message_seq_no=request.message_seq_no,
        method=request.method,
        status=Status(code=code.value[0], message=details),
    )
