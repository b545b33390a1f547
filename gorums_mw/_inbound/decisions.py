"""Carrying out what the inbound side decided: spans and counters, then closes.

Membership changes return an ``Outcome`` (decided under its lock); the
``Decisions`` of a node record it and close the streams it retired, outside
the lock. Rejections of callers are recorded here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from opentelemetry import propagate, trace
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from gorums_mw import _telemetry as t
from gorums_mw._identity.peer import EXTERNAL_ID, Peer


@dataclass(slots=True)
class Outcome:
    """What one change decided: spans to record, streams to close.

    Attributes:
        decisions: ``(span name, peer, decision)`` of each decision.
        close: what to call to close the streams the change retired.
        size: connected peers after the change.
    """

    decisions: list[tuple[str, Peer, str]] = field(default_factory=list)
    close: list[Callable[[], None]] = field(default_factory=list)
    size: int = 0


class Decisions:
    """Records one node's decisions on its telemetry."""

    __slots__ = ("_my_id", "_telemetry")

    def __init__(self, telemetry: t.Telemetry, my_id: int) -> None:
        self._telemetry = telemetry
        self._my_id = my_id

    def settle(self, outcome: Outcome, links: Sequence[trace.Link] = ()) -> None:
        """Record ``outcome``'s decisions (linked to ``links``), then close what it retired."""
        telemetry = self._telemetry
        for name, peer, decision in outcome.decisions:
            if name == t.SPAN_REGISTER:
                telemetry.registrations.add(1, {t.ATTR_NODE_ID: self._my_id})
            elif name == t.SPAN_TIEBREAK:
                telemetry.tiebreaks.add(1, {t.ATTR_NODE_ID: self._my_id, t.ATTR_DECISION: decision})
            span = telemetry.decision(name, links)
            if span.is_recording():
                span.set_attributes(self._attributes(peer, decision, outcome.size))
            span.end()
        for close in outcome.close:
            close()

    def reject(
        self, claimed: str, peer_string: str, exc: Exception, size: int, links: Sequence[trace.Link]
    ) -> None:
        """Record that a caller claiming ``claimed`` from ``peer_string`` was refused
        with ``exc`` while ``size`` peers were connected."""
        error_type = type(exc).__name__
        self._telemetry.rejections.add(1, {t.ATTR_NODE_ID: self._my_id, t.ERROR_TYPE: error_type})
        span = self._telemetry.decision(t.SPAN_REJECT, links)
        if span.is_recording():
            rejected = Peer(EXTERNAL_ID, claimed, peer_string)
            span.set_attributes(self._attributes(rejected, t.DECISION_REJECTED, size))
            span.set_attribute(t.ATTR_REASON, str(exc))
            span.set_attribute(t.ERROR_TYPE, error_type)
            span.set_status(StatusCode.ERROR, str(exc))
        span.end()

    def _attributes(self, peer: Peer, decision: str, size: int) -> dict[str, AttributeValue]:
        return {
            t.ATTR_NODE_ID: self._my_id,
            t.ATTR_PEER_ID: peer.id,
            t.ATTR_CLAIMED_ADDRESS: peer.address,
            t.ATTR_REAL_ADDRESS: peer.real_address,
            t.ATTR_DECISION: decision,
            t.ATTR_CONFIG_SIZE: size,
        }


def trace_links(context: object) -> list[trace.Link]:
    """A link to the trace the caller's metadata carries (``traceparent``), if any."""
    metadata = getattr(context, "invocation_metadata", None)
    entries: Iterable[tuple[str, object]] = (metadata() or ()) if callable(metadata) else ()
    carrier = {key: value for key, value in entries if isinstance(value, str)}
    if "traceparent" not in carrier:
        return []
    span_context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return [trace.Link(span_context)] if span_context.is_valid else []
