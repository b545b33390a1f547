"""OpenTelemetry: span, attribute and metric names, and the ``Telemetry`` that records them.

Names are public API (documented in docs/how-to/observability.md). Only ``opentelemetry-api``
is used: without an SDK every span is non-recording and every instrument a
no-op, so the cost is a few attribute lookups. Spans follow OpenTelemetry's
RPC conventions: a call gorums-mw makes is an INTERNAL span
(``gorums.quorum_call``, ...) with one CLIENT span per node under it, and a
request served over NodeStream gets a SERVER span when its caller's trace
is sampled (or ``trace_requests`` is set). Decisions (register, reject,
tiebreak, unregister) are INTERNAL spans linked to the trace that caused
them, where there is one.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

from gorums_mw._version import __version__

# Span names.
SPAN_REGISTER: Final = "gorums.peer.register"
SPAN_UNREGISTER: Final = "gorums.peer.unregister"
SPAN_REJECT: Final = "gorums.peer.reject"
SPAN_TIEBREAK: Final = "gorums.peer.tiebreak"
SPAN_QUORUM_CALL: Final = "gorums.quorum_call"
SPAN_CORRECTABLE: Final = "gorums.correctable"
SPAN_MULTICAST: Final = "gorums.multicast"
SPAN_RPC: Final = "gorums.rpc"
SPAN_UNICAST: Final = "gorums.unicast"

# Attribute keys of our own.
ATTR_NODE_ID: Final = "gorums.node.id"
"""The ID of the node recording the span (absent for a dialer without an ID)."""
ATTR_PEER_ID: Final = "gorums.peer.id"
"""The ID of the peer the span is about (0 when unknown)."""
ATTR_CLAIMED_ADDRESS: Final = "gorums.peer.claimed_address"
"""What the peer claimed: its address (``gorums-addr``) or ``node <id>`` (``gorums-node-id``)."""
ATTR_REAL_ADDRESS: Final = "gorums.peer.real_address"
"""grpc's peer string of an inbound stream; the dialed address of an outbound one."""
ATTR_DECISION: Final = "gorums.decision"
"""What was decided (see the table of decisions in docs/how-to/observability.md)."""
ATTR_REASON: Final = "gorums.reason"
"""Why, in words."""
ATTR_CONFIG_SIZE: Final = "gorums.config.size"
"""Connected peers after a decision; nodes in the configuration of a call."""
ATTR_METHOD: Final = "gorums.method"
"""Full method name of a call (``pkg.Service.Method``)."""
ATTR_QUORUM: Final = "gorums.quorum"
"""Replies a quorum call needed (0 when a quorum function decided)."""
ATTR_REPLIES: Final = "gorums.replies"
"""Replies a quorum call or correctable call received."""
ATTR_SENT: Final = "gorums.sent"
"""Nodes a one-way call was sent to."""
ATTR_CALL_KIND: Final = "gorums.call.kind"
"""``quorum_call``, ``correctable``, ``multicast``, ``rpc`` or ``unicast``."""

# OpenTelemetry semantic conventions (RPC, network, errors).
RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
RPC_GRPC_STATUS_CODE: Final = "rpc.grpc.status_code"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
NETWORK_PEER_ADDRESS: Final = "network.peer.address"
ERROR_TYPE: Final = "error.type"

# Decisions.
DECISION_REGISTERED: Final = "registered"
DECISION_REPLACED: Final = "replaced"
DECISION_UNREGISTERED: Final = "unregistered"
DECISION_RETIRED: Final = "retired"
DECISION_STALE: Final = "stale_cleanup"
DECISION_REJECTED: Final = "rejected"
DECISION_KEPT_OUTBOUND: Final = "kept_outbound"
DECISION_KEPT_INBOUND: Final = "kept_inbound"
DECISION_KEPT_BOTH: Final = "kept_both"

# Metric names.
METRIC_CONFIG_SIZE: Final = "gorums.config.size"
METRIC_CLIENTS: Final = "gorums.clients"
METRIC_BUFFERED: Final = "gorums.stream.buffered"
METRIC_REGISTRATIONS: Final = "gorums.peer.registrations"
METRIC_REJECTIONS: Final = "gorums.peer.rejections"
METRIC_TIEBREAKS: Final = "gorums.peer.tiebreaks"
METRIC_RECONNECTS: Final = "gorums.reconnects"
METRIC_CALL_DURATION: Final = "gorums.call.duration"
METRIC_NODE_LATENCY: Final = "gorums.node.latency"
METRIC_QUORUM_REPLIES: Final = "gorums.quorum_call.replies"
METRIC_BATCH_SIZE: Final = "gorums.stream.batch_size"

Observe = Callable[[], Iterable[tuple[str, int | float, dict[str, AttributeValue]]]]
"""Reports gauge readings: ``(metric name, value, attributes)``."""


class Telemetry:
    """The tracer and the instruments of one node (or one dialer).

    Attributes:
        tracer: the OpenTelemetry tracer.
        node_id: the node's ID, set as ``gorums.node.id`` on every span
            (None for a dialer that is not a node).
    """

    __slots__ = (
        "__weakref__",
        "batch_size",
        "call_duration",
        "node_id",
        "node_latency",
        "quorum_replies",
        "reconnects",
        "registrations",
        "rejections",
        "tiebreaks",
        "tracer",
        "watchers",
    )

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        node_id: int | None = None,
    ) -> None:
        self.tracer = trace.get_tracer("gorums_mw", __version__, tracer_provider=tracer_provider)
        self.node_id = node_id
        meter = metrics.get_meter("gorums_mw", __version__, meter_provider=meter_provider)
        self.registrations = meter.create_counter(
            METRIC_REGISTRATIONS, "{registration}", "Peer streams registered"
        )
        self.rejections = meter.create_counter(
            METRIC_REJECTIONS, "{rejection}", "Identity claims refused, by error.type"
        )
        self.tiebreaks = meter.create_counter(
            METRIC_TIEBREAKS, "{tiebreak}", "Pairs with two streams, by gorums.decision"
        )
        self.reconnects = meter.create_counter(
            METRIC_RECONNECTS, "{reconnect}", "Outbound streams dialed again after one ended"
        )
        self.call_duration = meter.create_histogram(
            METRIC_CALL_DURATION, "s", "Duration of calls made, by rpc.method and gorums.call.kind"
        )
        self.node_latency = meter.create_histogram(
            METRIC_NODE_LATENCY, "s", "Time from sending a request to a node to its reply"
        )
        self.quorum_replies = meter.create_histogram(
            METRIC_QUORUM_REPLIES, "{reply}", "Replies a quorum call had when it was decided"
        )
        self.batch_size = meter.create_histogram(
            METRIC_BATCH_SIZE, "{message}", "Messages per write on a BatchedNodeStream"
        )
        self.watchers = _gauges(meter)

    def base(self) -> dict[str, AttributeValue]:
        """The attributes every span of this node carries."""
        return {} if self.node_id is None else {ATTR_NODE_ID: self.node_id}

    def decision(self, name: str, links: Sequence[trace.Link] = ()) -> trace.Span:
        """Start the span of a decision, linked to what caused it; end it after setting status."""
        return self.tracer.start_span(name, links=links)

    def watch(self, observe: Observe) -> None:
        """Report ``observe``'s readings on this meter's observable gauges while
        ``observe``'s owner lives (it is held weakly when it is a bound method)."""
        self.watchers.add(observe)


def rpc_attributes(method: str) -> dict[str, AttributeValue]:
    """``rpc.system``, ``rpc.service`` and ``rpc.method`` of a full method name."""
    service, _, name = method.rpartition(".")
    return {RPC_SYSTEM: "grpc", RPC_SERVICE: service, RPC_METHOD: name}


@functools.lru_cache(maxsize=4096)
def peer_attributes(node_id: int) -> dict[str, AttributeValue]:
    """The attributes of a node's per-node metrics (shared: never change them)."""
    return {ATTR_PEER_ID: node_id}


def rpc_span_name(method: str) -> str:
    """The conventional name of an RPC span: ``pkg.Service/Method``."""
    service, _, name = method.rpartition(".")
    return f"{service}/{name}"


class _Watchers:
    """The gauge readers of every live node, held weakly."""

    def __init__(self) -> None:
        self._refs: list[weakref.ReferenceType[Observe]] = []

    def add(self, observe: Observe) -> None:
        bound = hasattr(observe, "__self__")
        ref = weakref.WeakMethod(observe) if bound else weakref.ref(observe)
        self._refs.append(ref)

    def readings(self, metric: str) -> list[Observation]:
        alive: list[weakref.ReferenceType[Observe]] = []
        found: list[Observation] = []
        for ref in self._refs:
            observe = ref()
            if observe is None:
                continue
            alive.append(ref)
            found.extend(
                Observation(value, attributes)
                for name, value, attributes in observe()
                if name == metric
            )
        self._refs = alive
        return found


_BY_METER: weakref.WeakKeyDictionary[metrics.Meter, _Watchers] = weakref.WeakKeyDictionary()


def _gauges(meter: metrics.Meter) -> _Watchers:
    """The readers of ``meter``'s observable gauges, made with the gauges on first use."""
    watchers = _BY_METER.get(meter)
    if watchers is not None:
        return watchers
    watchers = _BY_METER[meter] = _Watchers()
    for name, unit, description in (
        (METRIC_CONFIG_SIZE, "{node}", "Connected peers of a node"),
        (METRIC_CLIENTS, "{client}", "Connected client peers of a node"),
        (METRIC_BUFFERED, "By", "Bytes a node's streams buffer (queued and in service)"),
    ):
        meter.create_observable_gauge(
            name,
            callbacks=[functools.partial(_read, watchers, name)],
            unit=unit,
            description=description,
        )
    return watchers


def _read(watchers: _Watchers, metric: str, _: CallbackOptions) -> Iterable[Observation]:
    return watchers.readings(metric)
