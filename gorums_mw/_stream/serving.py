"""The scope a NodeStream request is served in: the caller as ``current_peer()``,
the caller's trace as the current context, and a SERVER span when it is sampled."""

from __future__ import annotations

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from gorums_mw._identity.peer import Peer, bind_peer, unbind_peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._telemetry import (
    ATTR_PEER_ID,
    ERROR_TYPE,
    NETWORK_PEER_ADDRESS,
    RPC_GRPC_STATUS_CODE,
    Telemetry,
    rpc_attributes,
    rpc_span_name,
)


class CallScope:
    """While a handler runs: ``current_peer()`` is the caller, the caller's trace
    context (from the request's entries) is the current one, and a SERVER span
    records the request when the caller's trace is sampled (or ``trace_all``)."""

    __slots__ = (
        "_failed",
        "_peer",
        "_peer_token",
        "_request",
        "_span",
        "_telemetry",
        "_token",
        "_trace_all",
    )

    def __init__(
        self, request: Message, peer: Peer, telemetry: Telemetry | None, trace_all: bool
    ) -> None:
        self._request = request
        self._peer = peer
        self._telemetry = telemetry
        self._trace_all = trace_all
        self._span: trace.Span | None = None
        self._failed = False

    def __enter__(self) -> CallScope:
        self._peer_token = bind_peer(self._peer)
        entries = self._request.entry
        context = propagate.extract({e.key: e.value for e in entries}) if entries else None
        telemetry = self._telemetry
        if telemetry is not None and (self._trace_all or _sampled(context)):
            self._span = _server_span(telemetry, self._request, self._peer, context)
            context = trace.set_span_in_context(self._span, context)
        self._token = otel_context.attach(context) if context is not None else None
        return self

    def failed(self, code: grpc.StatusCode, details: str) -> None:
        """The request ends with a non-OK status."""
        self._failed = True
        span = self._span
        if span is not None:
            span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
            span.set_attribute(ERROR_TYPE, code.name)
            span.set_status(StatusCode.ERROR, details)

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
        span = self._span
        if span is not None:
            if not self._failed:
                span.set_attribute(RPC_GRPC_STATUS_CODE, 0)
            span.end()
        unbind_peer(self._peer_token)


def _sampled(context: otel_context.Context | None) -> bool:
    """Whether the caller's trace, carried in the request, is sampled."""
    if context is None:
        return False
    span_context = trace.get_current_span(context).get_span_context()
    return span_context.is_valid and span_context.trace_flags.sampled


def _server_span(
    telemetry: Telemetry, request: Message, peer: Peer, context: otel_context.Context | None
) -> trace.Span:
    attributes = {
        **telemetry.base(),
        **rpc_attributes(request.method),
        ATTR_PEER_ID: peer.id,
        NETWORK_PEER_ADDRESS: peer.real_address,
    }
    return telemetry.tracer.start_span(
        rpc_span_name(request.method), context=context, kind=SpanKind.SERVER, attributes=attributes
    )
