"""The telemetry of one call gorums-mw makes: its span, a CLIENT span per request, its metrics.

Without an SDK the call's span does not record, so no per-request span is
started and the trace context is not injected: what remains is a clock
reading per reply (for ``Node.latency``) and no-op metric records. CLIENT
spans belong to the requests they stand for (the engine holds them), so a
second request to the same node would have a span of its own.
"""

from __future__ import annotations

import functools
import time
from typing import Final

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from gorums_mw import _telemetry as t
from gorums_mw._calls.target import Target
from gorums_mw._errors import CallError
from gorums_mw._identity.address import parse_node_address
from gorums_mw._stream.channel import Entries
from gorums_mw._telemetry import Telemetry

_ABANDONED: Final = "the call ended before this node answered"


class CallTrace:
    """Records one call, as a context manager around it: its span (started here,
    not made current: nothing the call runs needs it as a parent, and that saves
    attaching a context per call), the CLIENT spans of its requests and its metrics."""

    __slots__ = ("_finished", "_kind", "_method", "_span", "_start", "_telemetry", "recording")

    def __init__(
        self,
        telemetry: Telemetry,
        name: str,
        kind: str,
        method: str,
        *,
        size: int | None = None,
        quorum: int | None = None,
        peer: int | None = None,
    ) -> None:
        """Start recording a call of ``kind`` to ``method``, on a configuration of
        ``size`` nodes with a ``quorum``, or on node ``peer`` (attributes of its
        span, set only when it records)."""
        self._telemetry = telemetry
        self._span = span = telemetry.tracer.start_span(name)
        self._kind = kind
        self._method = method
        self._finished = False
        self.recording = span.is_recording()
        if self.recording:
            attributes: dict[str, AttributeValue] = {
                **telemetry.base(),
                **t.rpc_attributes(method),
                t.ATTR_METHOD: method,
                t.ATTR_CALL_KIND: kind,
            }
            for key, value in ((t.ATTR_CONFIG_SIZE, size), (t.ATTR_QUORUM, quorum)):
                if value is not None:
                    attributes[key] = value
            if peer is not None:
                attributes[t.ATTR_PEER_ID] = peer
            span.set_attributes(attributes)
        self._start = time.perf_counter()

    def request(self, node: Target, metadata: Entries) -> tuple[Entries, trace.Span | None]:
        """The entries of a request to ``node`` and its CLIENT span: the call's
        metadata and, when recording, the span's trace context."""
        if not self.recording:
            return metadata, None
        client = self._telemetry.tracer.start_span(
            t.rpc_span_name(self._method),
            context=trace.set_span_in_context(self._span),
            kind=SpanKind.CLIENT,
            attributes={
                **self._telemetry.base(),
                **_server_attributes(node),
                **t.rpc_attributes(self._method),
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(client))
        return (*metadata, *carrier.items()), client

    def answered(self, node: Target, client: trace.Span | None, error: CallError | None) -> None:
        """A request to ``node`` got its (first) answer: the node's latency, the span's status."""
        elapsed = time.perf_counter() - self._start
        node.observe(elapsed, error)
        if error is None:
            self._telemetry.node_latency.record(elapsed, t.peer_attributes(node.id))
        if client is not None:
            _end_client(client, error)

    @staticmethod
    def abandoned(client: trace.Span | None) -> None:
        """A request was given up before its node answered."""
        if client is not None:
            client.set_attribute(t.ERROR_TYPE, "abandoned")
            client.set_status(StatusCode.UNSET, _ABANDONED)
            client.end()

    def __enter__(self) -> CallTrace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        """End the span; an exception that ends the call is recorded on it."""
        if not self._finished:
            self.finish()
        if exc is not None and self.recording:
            self._span.record_exception(exc)
            self._span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
        self._span.end()

    def finish(self, replies: int | None = None, sent: int | None = None) -> None:
        """The call ended; ``replies`` it received or nodes it was ``sent`` to."""
        self._finished = True
        duration = time.perf_counter() - self._start
        self._telemetry.call_duration.record(duration, _call_attributes(self._method, self._kind))
        if replies is not None and self._kind == "quorum_call":
            self._telemetry.quorum_replies.record(
                replies, _call_attributes(self._method, self._kind)
            )
        if self.recording:
            if replies is not None:
                self._span.set_attribute(t.ATTR_REPLIES, replies)
            if sent is not None:
                self._span.set_attribute(t.ATTR_SENT, sent)


def _end_client(client: trace.Span, error: CallError | None) -> None:
    if error is None:
        client.set_attribute(t.RPC_GRPC_STATUS_CODE, 0)
    else:
        client.set_attribute(t.RPC_GRPC_STATUS_CODE, error.code.value[0])
        client.set_attribute(t.ERROR_TYPE, error.code.name)
        client.set_status(StatusCode.ERROR, error.details)
    client.end()


@functools.lru_cache(maxsize=1024)
def _server_attributes_of(node_id: int, address: str) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {t.ATTR_PEER_ID: node_id}
    if address:
        parsed = parse_node_address(address)
        attributes[t.SERVER_ADDRESS] = parsed.host
        attributes[t.SERVER_PORT] = parsed.port
    return attributes


def _server_attributes(node: Target) -> dict[str, AttributeValue]:
    return _server_attributes_of(node.id, node.address)


@functools.lru_cache(maxsize=1024)
def _call_attributes(method: str, kind: str) -> dict[str, AttributeValue]:
    return {t.RPC_METHOD: method, t.ATTR_CALL_KIND: kind}
