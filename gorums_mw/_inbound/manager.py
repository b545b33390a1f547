"""InboundManager: who is connected to this server, over which stream.

A facade over small parts: the ``AddressBook`` (configured nodes and their
current IPs), the ``Identifier`` (claim → verified ``Peer``), the
``Membership`` (streams, the pair rule, snapshots, waiters), the
``StreamCaps`` and the ``Decisions`` it records. What a ``System`` and the
NodeStream service need beyond the public surface is its ``InboundWiring``
(``wiring_of``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from gorums_mw import _telemetry as t
from gorums_mw._calls.configuration import Configuration
from gorums_mw._errors import ConfigurationError, StreamLimitError
from gorums_mw._identity.address import parse_node_address
from gorums_mw._identity.address_book import AddressBook
from gorums_mw._identity.claims import Claim, ClientClaim, claimed_text, parse_claim
from gorums_mw._identity.connection import CallContext
from gorums_mw._identity.identifier import Identifier
from gorums_mw._identity.peer import EXTERNAL_ID, Peer, check_node_id, current_peer
from gorums_mw._identity.registrar import Cleanup
from gorums_mw._inbound.caps import StreamCaps
from gorums_mw._inbound.decisions import Decisions, trace_links
from gorums_mw._inbound.membership import ConfigCallback, Link, Membership, MembershipStats, noop
from gorums_mw._inbound.waits import wait_until
from gorums_mw._inbound.wiring import InboundWiring
from gorums_mw._lifecycle import Lifecycle
from gorums_mw._limits import Limits
from gorums_mw._options import InboundNodeOption, NodeListOption
from gorums_mw._settings import NameResolution, setting
from gorums_mw._stream.budget import ByteBudget
from gorums_mw._stream.channel import Channel
from gorums_mw._stream.messages import message_ids
from gorums_mw._stream.registry import HandlerRegistry

__all__ = ["ConfigCallback", "InboundManager", "wiring_of"]


class InboundManager:
    """Tracks the known peers connected to this server.

    Safe to use from asyncio tasks and from other threads: state changes
    happen under one lock, and ``on_config_change`` runs under it too (so
    callbacks arrive in order; they may call back into the manager, but
    must not block on another thread that does).

    Example::

        manager = InboundManager(1, with_nodes({1: "127.0.0.1:9001", 2: "127.0.0.1:9002"}))
        server = grpc.aio.server(interceptors=[PeerIdentityInterceptor(manager)])
        ...
        manager.close()
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
        self._lifecycle = Lifecycle(f"InboundManager {my_id}")
        self._lifecycle.start()
        telemetry = t.Telemetry(tracer_provider, meter_provider, self._my_id)
        self._book = AddressBook(
            {node_id: parse_node_address(addr) for node_id, addr in self._known.items()},
            setting(name_resolution, NameResolution, "name_resolution"),
        )
        self._identifier = Identifier(self._book, require_certificate=require_certificate)
        self._membership = Membership(
            self._my_id, self._known, telemetry, on_config_change, self._lifecycle
        )
        self._decisions = Decisions(telemetry, self._my_id)
        self._caps = StreamCaps(self._limits, self._membership.client_count)
        self._wiring = InboundWiring(
            self._membership,
            self._decisions,
            self._caps,
            self._book,
            telemetry,
            handlers=handlers,
            limits=self._limits,
            budget=budget if budget is not None else ByteBudget(self._limits.total_buffer),
            ids=message_ids(accepted=True),
            trace_requests=trace_requests,
        )
        telemetry.watch(self._readings)

    def __repr__(self) -> str:
        stats = self.stats()
        closed = " closed" if self._lifecycle.state == "stopped" else ""
        return (
            f"<InboundManager id={self._my_id}{closed} peers={list(stats.peers)}"
            f" clients={stats.clients}>"
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

    def stats(self) -> MembershipStats:
        """What the manager holds now: connected peers, their inbound and outbound
        streams, client peers, registrations."""
        return self._membership.stats()

    def close(self) -> None:
        """Stop: end the registered streams and the address book's background
        refreshes; calls through its configurations and nodes raise
        ``RuntimeError`` from now on, and new streams are refused.

        Safe to call more than once. Stop the server as well (a ``System``
        does both).
        """
        if not self._lifecycle.stop():
            return
        self._book.close()
        for cleanup in self._membership.cleanups():
            cleanup()

    def inbound_config(self) -> Configuration:
        """The live configuration of connected known peers, ID-sorted.

        Each peer appears once, over the stream its pair agreed on: the one
        dialed by the lower ID, inbound or outbound (``System`` offers its
        outbound streams here). The result is an immutable snapshot; its
        nodes stay usable handles.
        """
        return self._membership.config()

    def client_config(self) -> Configuration:
        """The configuration of connected client peers (see ``GORUMS_CLIENT_KEY``)."""
        return self._membership.client_config()

    def lookup_node_id(self, addr: str) -> int | None:
        """The ID of the known node at ``addr`` (its configured name or IP, and port), or None.

        ``localhost`` is 127.0.0.1 and ::1: ``127.0.0.1:9001`` finds a node
        configured as ``localhost:9001``, and the other way round.
        """
        return self._book.node_of(addr)

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
            self._reject(claimed_text(claim), peer_string, exc, context)
            raise

    def peer(self, context: object) -> Peer:
        """Which peer a call is from, for any RPC.

        Streams registered by ``handle_stream`` are looked up by context;
        otherwise the peer the interceptor bound to this call is returned,
        and without an interceptor the context's metadata is checked.
        """
        link = self._membership.link_of(context)
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
            RuntimeError: the manager is closed.
        """
        existing = self._membership.link_of(context)
        if existing is not None:
            return existing.cleanup
        self._lifecycle.require_started()
        done = getattr(context, "done", None)
        if callable(done) and done():
            return None  # the caller gave up before its handler started
        claim = self._parse(context)
        if claim is None:
            return None
        if isinstance(claim, ClientClaim):
            return self._register_client(context, stream)
        peer = self.identify(context, claim)
        if peer.id == EXTERNAL_ID or peer.id == self._my_id:
            return None
        link = Link(
            peer, stream or self._wiring.endpoint(peer), context, follows_rule=claim.gorums_mw
        )
        return self._register(link, context)

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
            RuntimeError: the manager is closed.
        """
        if node_id not in self._known or node_id == self._my_id:
            raise KeyError(f"node {node_id} is not a known peer (known: {sorted(self._known)})")
        self._lifecycle.require_started()
        return self._register(Link(peer or Peer(node_id, addr, ""), stream, context), context)

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
        return await wait_until(self._membership, self.inbound_config, cond, timeout)

    async def wait_for_clients(
        self, cond: Callable[[Configuration], bool], timeout: float | None = None
    ) -> Configuration:
        """Wait until ``cond(client_config())`` holds; return that configuration.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        return await wait_until(self._membership, self.client_config, cond, timeout)

    def _parse(self, context: CallContext) -> Claim | None:
        try:
            return parse_claim(context.invocation_metadata() or ())
        except Exception as exc:
            self._reject("", context.peer() or "", exc, context)
            raise

    def _reject(self, claimed: str, peer_string: str, exc: Exception, context: object) -> None:
        size = self._membership.size
        self._decisions.reject(claimed, peer_string, exc, size, trace_links(context))

    def _register(self, link: Link, context: object) -> Cleanup:
        membership, decisions = self._membership, self._decisions
        links = trace_links(context)
        link.cleanup = lambda: decisions.settle(membership.unregister(link), links)
        decisions.settle(membership.register_inbound(link), links)
        return link.cleanup

    def _register_client(self, context: CallContext, stream: Channel | None) -> Cleanup:
        peer_string = context.peer() or ""
        try:
            self._caps.check_client()
        except StreamLimitError as exc:
            self._reject("", peer_string, exc, context)
            raise
        membership, decisions, wiring = self._membership, self._decisions, self._wiring
        links = trace_links(context)

        def make_link(peer: Peer) -> Link:
            link = Link(peer, stream or wiring.endpoint(peer), context)
            link.cleanup = lambda: decisions.settle(membership.unregister_client(link), links)
            return link

        link, outcome = membership.register_client(peer_string, make_link)
        decisions.settle(outcome, links)
        return link.cleanup or noop

    def _readings(self) -> Iterator[tuple[str, int | float, dict[str, AttributeValue]]]:
        """This node's gauge readings: configuration size, clients, buffered bytes."""
        attributes: dict[str, AttributeValue] = {t.ATTR_NODE_ID: self._my_id}
        stats = self._membership.stats()
        yield t.METRIC_CONFIG_SIZE, len(stats.peers), attributes
        yield t.METRIC_CLIENTS, stats.clients, attributes
        streams = self._membership.streams()
        yield t.METRIC_BUFFERED, sum(getattr(s, "buffered", 0) for s in streams), attributes


def wiring_of(manager: InboundManager) -> InboundWiring:
    """The wiring of ``manager``, for the ``System`` and the NodeStream service it serves."""
    return manager._wiring
