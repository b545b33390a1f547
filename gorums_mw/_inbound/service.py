"""The NodeStream services on a grpc.aio server, backed by an InboundManager.

Two RPCs carry the same protocol: ``/stream.Gorums/NodeStream`` (one
message per gRPC message, as Go Gorums) and
``/gorums_mw.Stream/BatchedNodeStream`` (a batch per gRPC message, between
gorums-mw peers). Identity, registration and everything after are the same.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc import aio

from gorums_mw._errors import StreamLimitError, abort_with
from gorums_mw._identity.claims import GORUMS_MW_KEY
from gorums_mw._identity.peer import bind_peer
from gorums_mw._inbound.manager import InboundManager, wiring_of
from gorums_mw._inbound.wiring import InboundWiring
from gorums_mw._proto.batch_pb2 import Batch
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw._stream.framing import BatchFraming, Framing, PlainFraming
from gorums_mw._wire import BATCHED_NODE_STREAM_SERVICE, NODE_STREAM_SERVICE

Context = aio.ServicerContext[Any, Any]

_HEADERS = ((GORUMS_MW_KEY, "1"),)
"""Response headers of a stream we serve: a dialer's probe tells us from a refusal by them."""


def add_node_stream_service(
    manager: InboundManager, server: aio.Server, *, batching: bool = True
) -> None:
    """Serve NodeStream on ``server``: peers that open it are registered with
    ``manager`` and their requests are answered by the manager's handlers.

    Attach ``PeerIdentityInterceptor(manager)`` to the server as well so
    ordinary RPCs are identified too, and give the server
    ``manager.limits.grpc_options()``.

    Args:
        manager: identifies and registers the peers.
        server: the grpc.aio server to add the services to (before it starts).
        batching: also serve ``BatchedNodeStream``, which gorums-mw dialers
            try first; without it they fall back to NodeStream.
    """

    wiring = wiring_of(manager)

    async def node_stream(_: object, context: Context) -> None:
        await _serve(manager, wiring, context, PlainFraming(context.read, context.write))

    async def batched_node_stream(_: object, context: Context) -> None:
        await _serve(manager, wiring, context, BatchFraming(context.read, context.write))

    plain = grpc.stream_stream_rpc_method_handler(
        node_stream,
        request_deserializer=Message.FromString,
        response_serializer=Message.SerializeToString,
    )
    handlers = [grpc.method_handlers_generic_handler(NODE_STREAM_SERVICE, {"NodeStream": plain})]
    if batching:
        batched = grpc.stream_stream_rpc_method_handler(
            batched_node_stream,
            request_deserializer=Batch.FromString,
            response_serializer=Batch.SerializeToString,
        )
        handlers.append(
            grpc.method_handlers_generic_handler(
                BATCHED_NODE_STREAM_SERVICE, {"BatchedNodeStream": batched}
            )
        )
    server.add_generic_rpc_handlers(handlers)


async def _serve(
    manager: InboundManager, wiring: InboundWiring, context: Context, framing: Framing
) -> None:
    """Identify and register the caller, then carry its stream until it ends."""
    try:
        cleanup = manager.handle_stream(context)
    except Exception as exc:
        await abort_with(context, exc)
    peer = manager.peer(context)
    bind_peer(peer)
    stream = wiring.stream_of(context)
    if not isinstance(stream, StreamEndpoint):  # an external caller: served, not registered
        try:
            cleanup = wiring.admit_external(context)
        except StreamLimitError as exc:
            await abort_with(context, exc)
        stream = wiring.endpoint(peer)
    try:
        await context.send_initial_metadata(_HEADERS)
        await stream.run(framing)
    finally:
        if cleanup is not None:
            cleanup()
    if stream.failure is not None:  # the peer sent bytes that are not a message: end that stream
        await context.abort(stream.failure.code, stream.failure.details)
