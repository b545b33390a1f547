"""``HandlerRegistry``: answers NodeStream requests with the methods of ordinary grpc servicers."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, NamedTuple

import grpc
from google.protobuf import descriptor_pool
from google.rpc.status_pb2 import Status

from gorums_mw._identity.peer import Peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.context import HandlerAborted, NodeStreamContext
from gorums_mw._stream.serving import CallScope
from gorums_mw._telemetry import Telemetry
from gorums_mw.proto import gorums_pb2

_log = logging.getLogger("gorums_mw")

_OK = grpc.StatusCode.OK
_UNKNOWN = grpc.StatusCode.UNKNOWN

Send = Callable[[Message], bool]
"""Where the replies to one request go (None for a one-way request). It returns
False when no more can be buffered: a server-streaming handler is then stopped."""

Kind = Literal["unary", "stream"]


class _Method(NamedTuple):
    """A method resolved once: what calling it over NodeStream needs."""

    kind: Kind | None  # None: client streaming, cannot be called over NodeStream
    behaviour: Callable[..., Any]
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    is_async: bool  # a coroutine or async generator function: runs on the loop
    one_way: bool  # declared (gorums.unicast) or (gorums.multicast): never answered


class _CallDetails(grpc.HandlerCallDetails):
    """What a generic handler is asked to resolve: a method path, no metadata."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class _Failed(Exception):
    """A request that ends with a non-OK status instead of (more) replies."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _same(value: Any) -> Any:
    """The (de)serializer of a handler that has none: bytes pass through."""
    return value


class HandlerRegistry:
    """Collects the methods of ordinary grpc servicers so NodeStream requests can call them.

    It has the two methods generated ``add_XServicer_to_server(servicer,
    server)`` functions call on a server, so those functions register a
    servicer here unchanged::

        registry = HandlerRegistry()
        echo_pb2_grpc.add_EchoServicer_to_server(EchoServicer(), registry)

    A request names its method by protobuf full name (``pkg.Service.Method``);
    the first lookup of a name resolves it, registered handlers first, then
    generic handlers (asked for ``/pkg.Service/Method`` without metadata), and
    later lookups are a dict lookup. Unary methods send one reply;
    server-streaming methods (Go Gorums' correctable calls) send one reply
    per response, all under the request's ID, and nothing marks the end (as
    upstream). Client-streaming methods are answered ``UNIMPLEMENTED``. A
    method its descriptor declares one-way (``gorums.unicast`` or
    ``gorums.multicast``) is never answered, whoever calls it.

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
        self,
        request: Message,
        peer: Peer,
        send: Send | None,
        *,
        telemetry: Telemetry | None = None,
        trace_all: bool = False,
    ) -> None:
        """Call the method ``request`` names and send its replies.

        While the handler runs, ``current_peer()`` returns ``peer``, and the
        trace context in the request's entries is the current context, so
        spans the handler starts continue the caller's trace. Async handlers
        run in the calling task; plain functions run in a worker thread.

        Each reply carries the request's sequence number and method and
        either a serialized response or a non-OK ``status``: an unknown or
        client-streaming method is ``UNIMPLEMENTED``, a payload that does not
        parse ``INVALID_ARGUMENT``, an abort its code and details, any other
        exception ``UNKNOWN`` (or the code the handler set) with
        ``"ExcType: message"``. A server-streaming handler that fails after
        some responses sends the error as its last reply.

        With ``telemetry``, the request gets a SERVER span (child of the
        caller's CLIENT span) when the caller's trace is sampled, or always
        with ``trace_all``.

        Args:
            request: a NodeStream request.
            peer: the node that sent it.
            send: where replies go; None for a one-way request, whose errors
                are logged at debug level.
            telemetry: where this node's spans go.
            trace_all: start a SERVER span even without a sampled caller.

        Raises:
            asyncio.CancelledError: the calling task was cancelled; it is not
                turned into a reply.
        """
        with CallScope(request, peer, telemetry, trace_all) as scope:
            try:
                method = self._method(request.method)
                if method.one_way:
                    send = None  # Go Gorums sends one-way calls unmarked: know them by option
                try:
                    message = method.deserialize(request.payload)
                except Exception as exc:
                    raise _Failed(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"cannot parse the {request.method} request: {_describe(exc)}",
                    ) from exc
                context = NodeStreamContext(request, peer)
                reply = _replier(request, method, send)
                if method.kind == "stream":
                    context.writer = reply
                await self._run(method, message, context, reply)
            except _Failed as failure:
                scope.failed(failure.code, failure.details)
                _fail(request, peer, send, failure.code, failure.details)

    def _method(self, name: str) -> _Method:
        method = self._resolved.get(name)
        if method is None:
            try:
                method = self._resolve(name)
            except Exception as exc:
                raise _Failed(_UNKNOWN, f"resolving {name}: {_describe(exc)}") from exc
            if method is None:
                raise _Failed(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {name}")
        if method.kind is None:
            raise _Failed(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{name} is client-streaming; NodeStream calls unary and server-streaming methods",
            )
        return method

    async def _run(
        self,
        method: _Method,
        message: Any,
        context: NodeStreamContext,
        reply: Callable[[Any], None],
    ) -> None:
        """Run the handler; send its response(s) through ``reply``."""
        try:
            if method.is_async:
                result = method.behaviour(message, context)
            else:  # a plain function: grpc runs those on a thread, so do we
                result = await asyncio.to_thread(method.behaviour, message, context)
            if method.kind == "unary":
                # An async handler's result is a coroutine; a plain one may return
                # an awaitable too.
                awaited = method.is_async or inspect.isawaitable(result)
                response = await result if awaited else result
            else:
                await _stream(result, reply)
        except HandlerAborted as exc:
            raise _Failed(exc.code, exc.details) from exc
        except _Failed:
            raise
        except Exception as exc:
            code = context.code()
            raise _Failed(_UNKNOWN if code in (None, _OK) else code, _describe(exc)) from exc
        code = context.code()
        if code is not None and code is not _OK:
            raise _Failed(code, context.details())
        if method.kind == "unary":
            reply(response)

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
        kind: Kind | None
        behaviour: Callable[..., Any] | None
        if handler.request_streaming:
            kind, behaviour = None, _same
        elif handler.response_streaming:
            kind, behaviour = "stream", handler.unary_stream
        else:
            kind, behaviour = "unary", handler.unary_unary
        if behaviour is None:
            return None
        resolved = _Method(
            kind,
            behaviour,
            handler.request_deserializer or _same,
            handler.response_serializer or _same,
            inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour),
            _declared_one_way(name),
        )
        self._resolved[name] = resolved
        return resolved


def _replier(request: Message, method: _Method, send: Send | None) -> Callable[[Any], None]:
    """Serializes a response and sends it as a reply to ``request`` (drops it if one-way)."""

    def reply(response: Any) -> None:
        if send is None:
            return
        try:
            payload = method.serialize(response)
        except Exception as exc:
            raise _Failed(
                grpc.StatusCode.INTERNAL,
                f"cannot serialize the {request.method} reply: {_describe(exc)}",
            ) from exc
        message = Message(
            message_seq_no=request.message_seq_no, method=request.method, payload=payload
        )
        if not send(message) and method.kind == "stream":
            raise _Failed(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{request.method}: the caller does not read the replies fast enough"
                " (stream buffer full)",
            )

    return reply


async def _stream(result: object, reply: Callable[[Any], None]) -> None:
    """Send every response of a server-streaming handler, whatever its kind."""
    if isinstance(result, AsyncIterator):
        async for response in result:
            reply(response)
    elif inspect.isawaitable(result):  # a coroutine that uses context.write()
        await result
    elif isinstance(result, Iterator):  # a plain generator: step it on a thread
        done = object()
        while (response := await asyncio.to_thread(next, result, done)) is not done:
            reply(response)


_ONE_WAY_OPTIONS = frozenset({gorums_pb2.unicast.number, gorums_pb2.multicast.number})
"""gorums.proto's ``unicast`` and ``multicast`` method options, by number (a
method's options may come from another copy of gorums.proto's module)."""


def _declared_one_way(name: str) -> bool:
    """Whether the method's descriptor, when known here, declares it one-way."""
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(name)
    except KeyError:
        return False
    return any(
        field.number in _ONE_WAY_OPTIONS and value is True
        for field, value in descriptor.GetOptions().ListFields()
    )


def _describe(exc: BaseException) -> str:
    """``ExcType: message``, the details of a reply for an exception."""
    return f"{type(exc).__name__}: {exc}"


def _fail(
    request: Message, peer: Peer, send: Send | None, code: grpc.StatusCode, details: str
) -> None:
    """Send the error reply to ``request``, or log it (debug) if it is one-way."""
    if send is None:
        _log.debug(
            "one-way %s from node %d failed: %s: %s", request.method, peer.id, code.name, details
        )
        return
    send(
        Message(
            message_seq_no=request.message_seq_no,
            method=request.method,
            status=Status(code=code.value[0], message=details),
        )
    )
