"""OpenTelemetry spans: names, attribute keys and the recorder of decisions.

Span and attribute names are public API (documented in the README). Spans
are only for decisions (register, unregister, reject, tiebreak) and for the
calls gorums-mw makes; nothing here runs per RPC served.
"""

from __future__ import annotations

from opentelemetry import trace

from gorums_mw._version import __version__

# Span names.
SPAN_REGISTER = "gorums.peer.register"
SPAN_UNREGISTER = "gorums.peer.unregister"
SPAN_REJECT = "gorums.peer.reject"
SPAN_TIEBREAK = "gorums.peer.tiebreak"
SPAN_QUORUM_CALL = "gorums.quorum_call"
SPAN_MULTICAST = "gorums.multicast"
SPAN_RPC = "gorums.rpc"

# Attribute keys.
ATTR_NODE_ID = "gorums.node.id"
"""The ID of the node recording the span."""
ATTR_PEER_ID = "gorums.peer.id"
"""The ID of the peer the decision is about (0 when unknown)."""
ATTR_CLAIMED_ADDRESS = "gorums.peer.claimed_address"
"""The address the peer claimed in ``gorums-addr``."""
ATTR_REAL_ADDRESS = "gorums.peer.real_address"
"""The peer string grpc reported for the connection."""
ATTR_DECISION = "gorums.decision"
"""What was decided (see the README's table of decisions)."""
ATTR_REASON = "gorums.reason"
"""Why, in words."""
ATTR_CONFIG_SIZE = "gorums.config.size"
"""Number of connected peers after the decision."""
ATTR_METHOD = "gorums.method"
"""Full method name of a call."""
ATTR_QUORUM = "gorums.quorum"
"""Replies a quorum call needed."""
ATTR_REPLIES = "gorums.replies"
"""Replies a call received."""

# Decisions.
DECISION_REGISTERED = "registered"
DECISION_REPLACED = "replaced"
DECISION_UNREGISTERED = "unregistered"
DECISION_STALE = "stale_cleanup"
DECISION_REJECTED = "rejected"
DECISION_KEPT_OUTBOUND = "kept_outbound"
DECISION_KEPT_INBOUND = "kept_inbound"
DECISION_KEPT_BOTH = "kept_both"
DECISION_RETIRED = "retired"


class Tracer:
    """Records gorums-mw spans with one OpenTelemetry tracer."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("gorums_mw", __version__, tracer_provider=tracer_provider)

    @property
    def tracer(self) -> trace.Tracer:
        """The underlying OpenTelemetry tracer."""
        return self._tracer

    def start_decision(self, name: str) -> trace.Span:
        """Start the span of a decision; set attributes only if it records, then end it."""
        return self._tracer.start_span(name)
