"""The NodeStream service on a grpc.aio server, backed by an InboundManager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from gorums_mw._peer import bind_peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream._endpoint import StreamEndpoint
from gorums_mw._wire import NODE_STREAM_SERVICE

if TYPE_CHECKING:
    from gorums_mw._inbound_manager import InboundManager


def add_node_stream_service(manager: InboundManager, server: aio.Server) -> None:
    """Serve NodeStream on ``server``: peers that open it are registered with
    ``manager`` and their requests are answered by the manager's handlers.

    Attach ``PeerIdentityInterceptor(manager)`` to the server as well so
    ordinary RPCs are identified too.
    """

    async def node_stream(_: object, context: aio.ServicerContext[Message, Message]) -> None:
        try:
            cleanup = manager.handle_stream(context)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if isinstance(code, grpc.StatusCode):
                await context.abort(code, str(exc))
            raise
        peer = manager.peer(context)
        bind_peer(peer)
        stream = manager.stream_of(context)
        if not isinstance(stream, StreamEndpoint):  # an external caller: served, not registered
            stream = manager.endpoint(peer)
        try:
            await context.send_initial_metadata(())
            await stream.run(context.read, context.write)
        finally:
            if cleanup is not None:
                cleanup()

    handler = grpc.stream_stream_rpc_method_handler(
        node_stream,
        request_deserializer=Message.FromString,
        response_serializer=Message.SerializeToString,
    )
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {"NodeStream": handler}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(NODE_STREAM_SERVICE, handlers),)
    )
