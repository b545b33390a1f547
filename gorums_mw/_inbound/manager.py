"""InboundManager: who is connected to this server, over which stream.

A facade over small parts: the ``AddressBook`` (configured nodes and their
current IPs), the ``Identifier`` (claim → verified ``Peer``), the
``Membership`` (streams, tiebreak, snapshots, waiters) and the telemetry
of its decisions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NoReturn

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from gorums_mw import _telemetry as t
from gorums_mw._calls.configuration import Configuration
from gorums_mw._calls.node import Node
from gorums_mw._calls.origin import Origin
from gorums_mw._errors import ConfigurationError, StreamLimitError
from gorums_mw._identity.address import parse_node_address
from gorums_mw._identity.address_book import AddressBook
from gorums_mw._identity.claims import Claim, ClientClaim, claimed_text, parse_claim
from gorums_mw._identity.connection import CallContext
from gorums_mw._identity.identifier import Identifier
from gorums_mw._identity.peer import EXTERNAL_ID, Peer, current_peer
from gorums_mw._identity.registrar import Cleanup
from gorums_mw._inbound.membership import ConfigCallback, Link, Membership, Outcome, noop
from gorums_mw._limits import ByteBudget, Limits
from gorums_mw._options import InboundNodeOption, NodeListOption, check_node_id
from gorums_mw._settings import NameResolution, setting
from gorums_mw._stream.channel import Channel
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw._stream.messages import message_ids
from gorums_mw._stream.registry import HandlerRegistry

__all__ = ["ConfigCallback", "InboundManager", "describe_condition"]


@dataclass(frozen=True, slots=True)
class ManagerStats:
    """What an ``InboundManager`` holds now, for tests, ``repr`` and metrics.

    Attributes:
        peers: IDs of the connected peers.
        inbound: IDs of the peers with a registered inbound stream.
        outbound: IDs of the peers with an outbound stream offered by a dialer.
        clients: connected client peers.
        registrations: registered streams (inbound peers and clients).
    """

    peers: tuple[int, ...]
    inbound: tuple[int, ...]
    outbound: tuple[int, ...]
    clients: int
    registrations: int


class InboundManager:
    """Tracks the known peers connected to this server.

    Safe to use from asyncio tasks and from other threads: state changes
    happen under one lock, and ``on_config_change`` runs under it too (so
    callbacks arrive in order; they may call back into the manager, but
    must not block on another thread that does).

    Example::

        manager = InboundManager(1, with_nodes({1: "127.0.0.1:9001", 2: "127.0.0.1:9002"}))
        server = grpc.aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    """

    def __init__(
        self,
        my_id: int,
        nodes: InboundNodeOption,
        *,
        limits: Limits | None = None,
        budget: ByteBudget | None = None,
        on_config_change: ConfigCallback | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        handlers: HandlerRegistry | None = None,
        require_certificate: bool = False,
        name_resolution: NameResolution | None = None,
        trace_requests: bool = False,
    ) -> None:
        """Create a manager for node ``my_id`` among the known ``nodes``.

        Args:
            my_id: this node's ID (1..2**32-1), one of ``nodes``.
            nodes: the known nodes, from ``with_nodes``.
            limits: message size and buffer bounds of inbound streams;
                default ``Limits()``.
            budget: the byte budget its streams share (a ``System`` shares one
                with its dialer); default one of ``limits.total_buffer``.
            on_config_change: called with the new configuration each time the
                set of connected peers changes (not at construction).
            tracer_provider: where spans go; default the global provider.
            meter_provider: where metrics go; default the global provider.
            handlers: the handlers that serve requests peers send over their
                streams; default none (requests get ``UNIMPLEMENTED``).
            require_certificate: also require that the caller's TLS client
                certificate names the node: its IP as an IP subject
                alternative name or, for a node configured by DNS name, that
                name as a DNS SAN. For servers behind NAT or on shared hosts,
                where the connection's IP alone proves little. Needs a TLS
                server that requires client certificates.
            name_resolution: how nodes addressed by DNS name are kept
                current; default ``NameResolution()``.
            trace_requests: start a SERVER span for every request served over
                NodeStream; by default only for requests whose caller's trace
                is sampled (so the cost without an SDK stays about zero).

        Raises:
            TypeError: ``nodes`` is not from ``with_nodes`` (``with_node_list``
                numbers nodes by position, which replicas need not agree on),
                or a setting has the wrong type.
            ConfigurationError: ``my_id`` is not a valid node ID or not one
                of ``nodes``.
        """
        if not isinstance(nodes, InboundNodeOption):
            kind = "with_node_list" if isinstance(nodes, NodeListOption) else type(nodes).__name__
            raise TypeError(f"InboundManager needs with_nodes({{id: addr}}), not {kind}")
        self._my_id = check_node_id(my_id)
        if my_id not in nodes.nodes:
            raise ConfigurationError(
                f"my_id {my_id} is not one of the nodes {sorted(nodes.nodes)}: a replica"
                " must be in its own configuration"
            )
        self._known = dict(nodes.nodes)
        self._limits = setting(limits, Limits, "limits")
        self._budget = budget if budget is not None else ByteBudget(self._limits.total_buffer)
        self._handlers = handlers
        self._telemetry = t.Telemetry(tracer_provider, meter_provider, self._my_id)
        self._trace_requests = trace_requests
        self._book = AddressBook(
            {node_id: parse_node_address(addr) for node_id, addr in self._known.items()},
            setting(name_resolution, NameResolution, "name_resolution"),
        )
        self._identifier = Identifier(self._book, require_certificate=require_certificate)
        peers = {node_id: addr for node_id, addr in self._known.items() if node_id != my_id}
        self._membership = Membership(
            self._my_id, peers, self._telemetry, on_config_change, Origin(frozenset(self._known))
        )
        self._message_ids = message_ids(accepted=True)
        self._unconfigured: dict[object, Cleanup] = {}
        """External callers' streams, each holding a place under ``Limits.max_streams``."""
        self._telemetry.watch(self._readings)

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<InboundManager id={self._my_id} peers={list(stats.peers)} clients={stats.clients}>"
        )

    @property
    def my_id(self) -> int:
        """This node's ID."""
        return self._my_id

    @property
    def known_nodes(self) -> dict[int, str]:
        """The known nodes: ID → configured address (an IP literal or a DNS name)."""
        return dict(self._known)

    @property
    def limits(self) -> Limits:
        """The message size and buffer bounds of inbound streams. Give the server
        ``limits.grpc_options()`` so grpc enforces the same message size."""
        return self._limits

    @property
    def handlers(self) -> HandlerRegistry | None:
        """The handlers serving requests that peers send over their streams."""
        return self._handlers

    @property
    def telemetry(self) -> t.Telemetry:
        """The tracer and instruments this manager and its configurations use."""
        return self._telemetry

    @property
    def address_book(self) -> AddressBook:
        """The configured nodes and the IPs each has now."""
        return self._book

    def stats(self) -> ManagerStats:
        """What the manager holds now: connected peers, client peers, registrations."""
        membership = self._membership
        with membership.lock:
            return ManagerStats(
                tuple(membership.connected_ids),
                tuple(sorted(membership.inbound_ids)),
                tuple(sorted(membership.outbound_ids)),
                len(membership.clients),
                len(membership.by_context),
            )

    def inbound_config(self) -> Configuration:
        """The live configuration of connected known peers, ID-sorted.

        Each peer appears once, over the stream its pair agreed on: the one
        dialed by the lower ID, inbound or outbound (``System`` offers its
        outbound streams here). The result is an immutable snapshot; its
        nodes stay usable handles.
        """
        return self._membership.config()

    def peer_node(self, node_id: int) -> Node | None:
        """The handle of known peer ``node_id``, connected or not (None if unknown)."""
        return self._membership.node(node_id)

    def client_config(self) -> Configuration:
        """The configuration of connected client peers (see ``GORUMS_CLIENT_KEY``)."""
        return self._membership.client_config()

    def lookup_node_id(self, addr: str) -> int | None:
        """The ID of the known node at ``addr`` (its configured name or IP, and port), or None."""
        return self._book.node_of(addr)

    def next_message_id(self) -> int:
        """A fresh ID for a server-initiated message; never one a dialing peer uses."""
        return next(self._message_ids)

    def identify(self, context: CallContext, claim: Claim) -> Peer:
        """Verify ``claim`` against the call's connection.

        Returns:
            The caller: a known node, or an external client (ID 0).

        Raises:
            InvalidAddressError: the two identity keys name different nodes.
            PeerAddressMismatchError: the connection's IP is not the node's.
            PeerCertificateError: certificates are required and the caller's
                does not vouch for the node.
        """
        peer_string: str = context.peer() or ""
        try:
            return self._identifier.identify(peer_string, claim, context)
        except Exception as exc:
            self._record_reject(claimed_text(claim), peer_string, exc, _links(context))
            raise

    def peer(self, context: object) -> Peer:
        """Which peer a call is from, for any RPC.

        Streams registered by ``handle_stream`` are looked up by context;
        otherwise the peer the interceptor bound to this call is returned,
        and without an interceptor the context's metadata is checked.
        """
        link = self._membership.by_context.get(context)
        if link is not None:
            return link.peer
        bound = current_peer()
        if bound.real_address or not isinstance(context, CallContext):
            return bound
        claim = self._parse(context)
        if claim is None:
            return Peer(EXTERNAL_ID, "", context.peer() or "")
        return self.identify(context, claim)

    def handle_stream(self, context: CallContext, stream: Channel | None = None) -> Cleanup | None:
        """Identify a stream's caller and register it as a connected peer.

        The single entry point for a new inbound stream: parse the claim →
        identify → register. Calling it again for the same context returns
        the same cleanup.

        Args:
            context: the stream's ``grpc.aio.ServicerContext``.
            stream: what calls to the peer go through; default a NodeStream
                endpoint on this context (served by the NodeStream service).

        Client peers count against ``Limits.max_client_peers`` and, with
        the external callers' NodeStreams, against ``Limits.max_streams``.

        Returns:
            The cleanup to run when the stream ends, or None for an external
            or unknown caller.

        Raises:
            StreamLimitError: a cap of ``Limits`` is reached; nothing is
                registered and nothing registered is disturbed.
            InvalidAddressError: the claim is malformed or inconsistent.
            PeerAddressMismatchError: the connection's IP is not the node's.
            PeerCertificateError: as ``identify``.
        """
        existing = self._membership.by_context.get(context)
        if existing is not None:
            return existing.cleanup
        done = getattr(context, "done", None)
        if callable(done) and done():
            return None  # the caller gave up before its handler started
        claim = self._parse(context)
        if claim is None:
            return None
        if isinstance(claim, ClientClaim):
            self._check_room(context, client=True)
            return self._register_client(context.peer() or "", stream, context, _links(context))
        peer = self.identify(context, claim)
        if peer.id == EXTERNAL_ID or peer.id == self._my_id:
            return None
        link = Link(
            peer,
            stream or self.endpoint(peer),
            context,
            follows_tiebreak=claim.gorums_mw,
        )
        return self._register(link, _links(context))

    def stream_of(self, context: object) -> Channel | None:
        """The stream registered for ``context``, if any."""
        link = self._membership.by_context.get(context)
        return link.stream if link is not None else None

    def register_peer(
        self,
        node_id: int,
        addr: str,
        stream: Channel,
        context: object,
        peer: Peer | None = None,
    ) -> Cleanup:
        """Register ``stream`` (keyed on ``context``) as node ``node_id``'s inbound stream.

        A new inbound stream of a peer always replaces the earlier one (a
        reconnect); the replaced stream is closed.

        Returns:
            An idempotent unregister function. Run late for a replaced
            stream, it never removes the replacement.

        Raises:
            KeyError: ``node_id`` is not a known peer.
        """
        self._check_peer(node_id)
        return self._register(Link(peer or Peer(node_id, addr, ""), stream, context))

    def add_outbound(self, node_id: int, stream: Channel, close: Callable[[], None]) -> Cleanup:
        """Offer an outbound stream to a known peer for the tiebreak.

        Of a pair's two streams, both sides use the one dialed by the lower
        ID. If this node has the higher ID and the peer's inbound stream is
        registered, ``close`` is called at once (now or when that inbound
        stream arrives); otherwise the outbound stream connects the peer. A
        peer that keeps both streams (Go Gorums) keeps ours too, and is
        called over ours while it is up.

        Returns:
            The function to call when the outbound stream ends.

        Raises:
            KeyError: ``node_id`` is not a known peer.
        """
        self._check_peer(node_id)
        address = self._known[node_id]
        link = Link(Peer(node_id, address, address), stream, close=close)
        outcome, kept = self._membership.add_outbound(link)
        self._apply(outcome)
        if not kept:
            close()
            return noop
        return lambda: self._membership.remove_outbound(link)

    def inbound_stream(self, node_id: int) -> Channel | None:
        """The registered inbound stream of ``node_id``, if any."""
        link = self._membership.inbound_stream(node_id)
        return link.stream if link is not None else None

    def keeps_own_dialing(self, node_id: int) -> bool:
        """Whether this node must keep dialing ``node_id`` although it dialed us:
        the lower ID does, and so does everyone with a peer that keeps both streams."""
        link = self._membership.inbound_stream(node_id)
        return link is None or not self._membership.loses_tiebreak(link)

    async def wait_for_config(
        self, cond: Callable[[Configuration], bool], timeout: float | None = None
    ) -> Configuration:
        """Wait until ``cond(inbound_config())`` holds; return that configuration.

        ``cond`` is checked again at every change of membership and whenever
        a node switches streams (a reconnect or a tiebreak); never polls.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; it names ``cond``
                and the configuration.
        """
        return await self._wait(self.inbound_config, cond, timeout)

    async def wait_for_clients(
        self, cond: Callable[[Configuration], bool], timeout: float | None = None
    ) -> Configuration:
        """Wait until ``cond(client_config())`` holds; return that configuration.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        return await self._wait(self.client_config, cond, timeout)

    def endpoint(self, peer: Peer) -> StreamEndpoint:
        """A NodeStream endpoint for an inbound stream of ``peer``."""
        return StreamEndpoint(
            peer,
            self._handlers,
            accepted=True,
            limits=self._limits,
            budget=self._budget,
            ids=self._message_ids,
            telemetry=self._telemetry,
            trace_requests=self._trace_requests,
        )

    async def _wait(
        self,
        current: Callable[[], Configuration],
        cond: Callable[[Configuration], bool],
        timeout: float | None,
    ) -> Configuration:
        loop = asyncio.get_running_loop()
        membership = self._membership
        try:
            async with asyncio.timeout(timeout):
                while True:
                    entry = (loop, loop.create_future())
                    with membership.lock:
                        config = current()
                        if cond(config):
                            return config
                        membership.add_waiter(entry)
                    try:
                        await entry[1]
                    finally:
                        membership.remove_waiter(entry)
        except TimeoutError:
            raise TimeoutError(
                f"waited {timeout} s for {describe_condition(cond)}; the configuration was"
                f" {current()!r}"
            ) from None

    def _parse(self, context: CallContext) -> Claim | None:
        try:
            return parse_claim(context.invocation_metadata() or ())
        except Exception as exc:
            self._record_reject("", context.peer() or "", exc, _links(context))
            raise

    def _check_room(self, context: CallContext, *, client: bool) -> None:
        """Refuse one more unconfigured caller's stream when a cap of ``Limits`` is reached."""
        with self._membership.lock:
            error = self._no_room(client=client)
        if error is not None:
            self._refuse(context, error)

    def admit_external(self, context: CallContext) -> Cleanup:
        """Hold a place under ``Limits.max_streams`` for an external caller's
        NodeStream (the NodeStream service calls it); return what frees it.

        Raises:
            StreamLimitError: the cap is reached.
        """

        def leave() -> None:
            with self._membership.lock:
                self._unconfigured.pop(context, None)

        with self._membership.lock:
            error = self._no_room(client=False)
            if error is None:
                self._unconfigured[context] = leave
                return leave
        self._refuse(context, error)

    def _no_room(self, *, client: bool) -> StreamLimitError | None:
        """The cap one more client peer (or external caller) would pass; call with the lock."""
        limits = self._limits
        clients = len(self._membership.clients)
        if client and clients >= limits.max_client_peers:
            return StreamLimitError("max_client_peers", limits.max_client_peers)
        if clients + len(self._unconfigured) >= limits.max_streams:
            return StreamLimitError("max_streams", limits.max_streams)
        return None

    def _refuse(self, context: CallContext, error: StreamLimitError) -> NoReturn:
        self._record_reject("", context.peer() or "", error, _links(context))
        raise error

    def _check_peer(self, node_id: int) -> None:
        if node_id not in self._known or node_id == self._my_id:
            raise KeyError(f"node {node_id} is not a known peer (known: {sorted(self._known)})")

    def _register(self, link: Link, links: Sequence[trace.Link] = ()) -> Cleanup:
        membership = self._membership
        link.cleanup = lambda: self._apply(membership.unregister(link), links)
        self._apply(membership.register_inbound(link), links)
        return link.cleanup

    def _register_client(
        self,
        peer_string: str,
        stream: Channel | None,
        context: object,
        links: Sequence[trace.Link],
    ) -> Cleanup:
        membership = self._membership

        def make_link(peer: Peer) -> Link:
            link = Link(peer, stream or self.endpoint(peer), context)
            link.cleanup = lambda: self._apply(membership.unregister_client(link), links)
            return link

        link, outcome = membership.register_client(peer_string, make_link)
        self._apply(outcome, links)
        return link.cleanup or noop

    def _apply(self, outcome: Outcome, links: Sequence[trace.Link] = ()) -> None:
        """Record an outcome's decisions, then close what it retired."""
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

    def _record_reject(
        self, claimed: str, peer: str, exc: Exception, links: Sequence[trace.Link]
    ) -> None:
        error_type = type(exc).__name__
        self._telemetry.rejections.add(1, {t.ATTR_NODE_ID: self._my_id, t.ERROR_TYPE: error_type})
        span = self._telemetry.decision(t.SPAN_REJECT, links)
        if span.is_recording():
            size = len(self._membership.connected_ids)
            rejected = Peer(EXTERNAL_ID, claimed, peer)
            span.set_attributes(self._attributes(rejected, t.DECISION_REJECTED, size))
            span.set_attribute(t.ATTR_REASON, str(exc))
            span.set_attribute(t.ERROR_TYPE, error_type)
            span.set_status(StatusCode.ERROR, str(exc))
        span.end()

    def _readings(self) -> Iterator[tuple[str, int | float, dict[str, AttributeValue]]]:
        """This node's gauge readings: configuration size, clients, buffered bytes."""
        membership = self._membership
        attributes: dict[str, AttributeValue] = {t.ATTR_NODE_ID: self._my_id}
        with membership.lock:
            streams = [link.stream for link in membership.by_context.values()]
            yield t.METRIC_CONFIG_SIZE, len(membership.connected_ids), attributes
            yield t.METRIC_CLIENTS, len(membership.clients), attributes
        yield t.METRIC_BUFFERED, sum(getattr(s, "buffered", 0) for s in streams), attributes

    def _attributes(self, peer: Peer, decision: str, size: int) -> dict[str, AttributeValue]:
        return {
            t.ATTR_NODE_ID: self._my_id,
            t.ATTR_PEER_ID: peer.id,
            t.ATTR_CLAIMED_ADDRESS: peer.address,
            t.ATTR_REAL_ADDRESS: peer.real_address,
            t.ATTR_DECISION: decision,
            t.ATTR_CONFIG_SIZE: size,
        }


def describe_condition(cond: Callable[..., object]) -> str:
    """A condition's name for an error message (``<lambda> at file:line`` for a lambda)."""
    code = getattr(cond, "__code__", None)
    name = getattr(cond, "__qualname__", None) or repr(cond)
    if code is not None and name.endswith("<lambda>"):
        return f"the condition {name} at {code.co_filename}:{code.co_firstlineno}"
    return f"the condition {name}"


def _links(context: object) -> list[trace.Link]:
    """A link to the trace the caller's metadata carries (``traceparent``), if any."""
    metadata = getattr(context, "invocation_metadata", None)
    entries: Iterable[tuple[str, object]] = (metadata() or ()) if callable(metadata) else ()
    carrier = {key: value for key, value in entries if isinstance(value, str)}
    if "traceparent" not in carrier:
        return []
    span_context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return [trace.Link(span_context)] if span_context.is_valid else []
