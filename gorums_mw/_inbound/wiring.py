"""What a ``System`` and the NodeStream service need from an ``InboundManager``.

Not public: users call the manager. Each manager creates one
``InboundWiring``, which ``wiring_of(manager)`` hands out. A ``System``
gives it to its dialer as the ``StreamLinker`` (outbound streams join the
membership under the pair rule) and uses its telemetry, node handles and
address book; the NodeStream service builds endpoints with it, finds the
stream a context registered, and holds places for external callers.
"""

from __future__ import annotations

import itertools

from gorums_mw._calls.node import Node
from gorums_mw._errors import StreamLimitError
from gorums_mw._identity.address_book import AddressBook
from gorums_mw._identity.connection import CallContext
from gorums_mw._identity.peer import Peer
from gorums_mw._identity.registrar import Cleanup
from gorums_mw._inbound.caps import StreamCaps
from gorums_mw._inbound.decisions import Decisions, trace_links
from gorums_mw._inbound.membership import Link, Membership, noop
from gorums_mw._limits import Limits
from gorums_mw._stream.budget import ByteBudget
from gorums_mw._stream.channel import Channel
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw._stream.registry import HandlerRegistry
from gorums_mw._telemetry import Telemetry


class InboundWiring:
    """The inside of one ``InboundManager``, for the code that wires a replica.

    Attributes:
        telemetry: the tracer and instruments of the manager and its configurations.
        address_book: the configured nodes and the IPs each has now.
    """

    __slots__ = (
        "_budget",
        "_caps",
        "_decisions",
        "_handlers",
        "_ids",
        "_limits",
        "_membership",
        "_trace_requests",
        "address_book",
        "telemetry",
    )

    def __init__(
        self,
        membership: Membership,
        decisions: Decisions,
        caps: StreamCaps,
        address_book: AddressBook,
        telemetry: Telemetry,
        *,
        handlers: HandlerRegistry | None,
        limits: Limits,
        budget: ByteBudget,
        ids: itertools.count[int],
        trace_requests: bool,
    ) -> None:
        self._membership = membership
        self._decisions = decisions
        self._caps = caps
        self.address_book = address_book
        self.telemetry = telemetry
        self._handlers = handlers
        self._limits = limits
        self._budget = budget
        self._ids = ids
        self._trace_requests = trace_requests

    def endpoint(self, peer: Peer) -> StreamEndpoint:
        """A NodeStream endpoint for a stream ``peer`` opened to this node."""
        return StreamEndpoint(
            peer,
            self._handlers,
            accepted=True,
            limits=self._limits,
            budget=self._budget,
            ids=self._ids,
            telemetry=self.telemetry,
            trace_requests=self._trace_requests,
        )

    def stream_of(self, context: object) -> Channel | None:
        """The stream registered for ``context``, if any."""
        link = self._membership.link_of(context)
        return link.stream if link is not None else None

    def admit_external(self, context: CallContext) -> Cleanup:
        """Hold a place under ``Limits.max_streams`` for an external caller's
        NodeStream; return what frees it.

        Raises:
            StreamLimitError: the cap is reached (recorded as a rejection).
        """
        try:
            return self._caps.admit_external(context)
        except StreamLimitError as exc:
            size = self._membership.size
            self._decisions.reject("", context.peer() or "", exc, size, trace_links(context))
            raise

    def node(self, node_id: int) -> Node | None:
        """The handle of known peer ``node_id``, connected or not (None if unknown)."""
        return self._membership.node(node_id)

    def inbound_stream(self, node_id: int) -> Channel | None:
        """The registered inbound stream of ``node_id``, if any."""
        return self._membership.inbound_stream(node_id)

    def add_outbound(self, node_id: int, stream: Channel, close: Cleanup) -> Cleanup:
        """Offer an outbound stream to known peer ``node_id``; the pair rule decides.

        If the pair uses the peer's inbound stream, ``close`` is called (now,
        or when that stream arrives); otherwise ``stream`` connects the peer.

        Returns:
            The function to call when the outbound stream ends.

        Raises:
            KeyError: ``node_id`` is not a known peer.
        """
        node = self._membership.node(node_id)
        if node is None:
            raise KeyError(f"node {node_id} is not a known peer")
        link = Link(Peer(node_id, node.address, node.address), stream, close=close)
        outcome, kept = self._membership.add_outbound(link)
        self._decisions.settle(outcome)
        if not kept:
            close()
            return noop
        return lambda: self._membership.remove_outbound(link)

    def attach(self, node: Node, endpoint: StreamEndpoint) -> Cleanup:
        """``StreamLinker``: offer the dialer's stream to ``node``; a stream
        the pair does not use is retired."""
        return self.add_outbound(node.id, endpoint, endpoint.retire)

    async def wait_to_dial(self, node_id: int) -> None:
        """``StreamLinker``: return once the pair rule lets this node dial
        ``node_id``: at once, or when the peer's stream to this node ends."""
        membership = self._membership
        await membership.wait_for(membership.config, lambda _: membership.dials(node_id))
