"""InboundManager: who is connected to this server, over which stream.

It identifies callers, registers the streams of known peers, applies the
tiebreak between a peer's inbound and outbound streams, and keeps the live
configuration of connected peers.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from gorums_mw import _tracing as t
from gorums_mw._configuration import Configuration
from gorums_mw._errors import (
    ConfigurationError,
    InvalidAddressError,
    PeerAddressMismatchError,
    PeerCertificateError,
)
from gorums_mw._identity import (
    CallContext,
    check_certificate,
    claimed_address,
    normalize_addr,
    validate_claim,
)
from gorums_mw._limits import ByteBudget, Limits
from gorums_mw._node import Channel, Node
from gorums_mw._options import InboundNodeOption, NodeListOption, check_node_id
from gorums_mw._peer import EXTERNAL_ID, MAX_NODE_ID, Peer, current_peer
from gorums_mw._registrar import Cleanup
from gorums_mw._settings import setting
from gorums_mw._stream._endpoint import StreamEndpoint, message_ids
from gorums_mw._stream._registry import HandlerRegistry
from gorums_mw._wire import GORUMS_CLIENT_KEY

FIRST_CLIENT_ID = MAX_NODE_ID + 1
"""Client peers get IDs from here up, never colliding with configured IDs."""

ConfigCallback = Callable[[Configuration], None]


@dataclass(slots=True, eq=False)
class _Link:
    """One registered stream of one peer."""

    peer: Peer
    stream: Channel
    context: object | None = None
    close: Callable[[], None] | None = None
    cleanup: Cleanup | None = None


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
        handlers: HandlerRegistry | None = None,
        require_certificate: bool = False,
    ) -> None:
        """Create a manager for node ``my_id`` among the known ``nodes``.

        Args:
            my_id: this node's ID (1..2**32-1).
            nodes: the known nodes, from ``with_nodes``.
            limits: message size and buffer bounds of inbound streams;
                default ``Limits()``.
            budget: the byte budget its streams share (a ``System`` shares one
                with its dialer); default one of ``limits.total_buffer``.
            on_config_change: called with the new configuration each time the
                set of connected peers changes (not at construction).
            tracer_provider: where spans go; default the global provider.
            handlers: the handlers that serve requests peers send over their
                streams; default none (requests get ``UNIMPLEMENTED``).
            require_certificate: also require that the caller's TLS client
                certificate names the claimed IP (an IP subject alternative
                name); for servers behind NAT or on shared hosts, where the
                connection's IP alone proves little. Needs a TLS server that
                requires client certificates.

        Raises:
            TypeError: ``nodes`` is not from ``with_nodes`` (``with_node_list``
                numbers nodes by position, which replicas need not agree on).
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
        self._id_of_addr = {addr: node_id for node_id, addr in self._known.items()}
        self._limits = setting(limits, Limits, "limits")
        self._budget = budget if budget is not None else ByteBudget(self._limits.total_buffer)
        self._on_change = on_config_change
        self._handlers = handlers
        self._require_certificate = require_certificate
        self._tracer = t.Tracer(tracer_provider)
        self._lock = threading.RLock()
        self._nodes = {
            node_id: Node(node_id, addr, self._tracer) for node_id, addr in self._known.items()
        }
        self._inbound: dict[int, _Link] = {}
        self._outbound: dict[int, _Link] = {}
        self._by_context: dict[object, _Link] = {}
        self._connected: list[Node] = []
        self._snapshot: weakref.ref[Configuration] | None = None
        self._clients: dict[int, Node] = {}
        self._client_ids = itertools.count(FIRST_CLIENT_ID)
        self._message_ids = message_ids(accepted=True)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return (
            f"<InboundManager id={self._my_id} peers={[node.id for node in self._connected]}"
            f" clients={len(self._clients)}>"
        )

    @property
    def my_id(self) -> int:
        """This node's ID."""
        return self._my_id

    @property
    def known_nodes(self) -> dict[int, str]:
        """The known nodes: ID → normalized address."""
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
    def tracer(self) -> t.Tracer:
        """The span recorder this manager and its configurations use."""
        return self._tracer

    def inbound_config(self) -> Configuration:
        """The live configuration of connected known peers, ID-sorted.

        Each peer appears once, over the stream its pair agreed on. The
        result is an immutable snapshot; its nodes stay usable handles.
        """
        ref = self._snapshot
        snapshot = ref() if ref is not None else None
        if snapshot is None:
            with self._lock:
                ref = self._snapshot
                snapshot = ref() if ref is not None else None
                if snapshot is None:
                    # Shares the list: _writable_connected copies it before a
                    # change while this snapshot is alive (copy on write).
                    snapshot = Configuration._sorted(self._connected, self._tracer)
                    self._snapshot = weakref.ref(snapshot)
        return snapshot

    def client_config(self) -> Configuration:
        """The configuration of connected client peers (see ``GORUMS_CLIENT_KEY``)."""
        with self._lock:
            return Configuration._sorted(tuple(self._clients.values()), self._tracer)

    def lookup_node_id(self, addr: str) -> int | None:
        """The ID of the known node at ``addr``, or None."""
        node_id = self._id_of_addr.get(addr)
        if node_id is not None:
            return node_id
        try:
            return self._id_of_addr.get(normalize_addr(addr))
        except InvalidAddressError:
            return None

    def next_message_id(self) -> int:
        """A fresh ID for a server-initiated message; never one a dialing peer uses."""
        return next(self._message_ids)

    def identify(self, context: CallContext, claimed: str) -> Peer:
        """Validate a ``gorums-addr`` claim against the call's connection.

        Returns:
            The caller: a known node, or an external client (ID 0) whose
            address is not known.

        Raises:
            InvalidAddressError: the claim is malformed.
            PeerAddressMismatchError: the claimed IP is not the connection's.
            PeerCertificateError: certificates are required and the caller's
                does not name the claimed IP.
        """
        peer = context.peer()
        try:
            address = validate_claim(peer, claimed)
            if self._require_certificate:
                check_certificate(context, address)
        except (InvalidAddressError, PeerAddressMismatchError, PeerCertificateError) as exc:
            self._record_reject(claimed, peer, exc)
            raise
        return Peer(self._id_of_addr.get(address, EXTERNAL_ID), address, peer)

    def peer(self, context: object) -> Peer:
        """Which peer a call is from, for any RPC.

        Streams registered by ``handle_stream`` are looked up by context;
        otherwise the peer the interceptor bound to this call is returned,
        and without an interceptor the context's metadata is checked.
        """
        link = self._by_context.get(context)
        if link is not None:
            return link.peer
        bound = current_peer()
        if bound.real_address or not isinstance(context, CallContext):
            return bound
        return self._identify_context(context)

    def handle_stream(self, context: CallContext, stream: Channel | None = None) -> Cleanup | None:
        """Identify a stream's caller and register it as a connected peer.

        The single entry point for a new inbound stream: identify → lookup →
        register. Calling it again for the same context returns the same
        cleanup.

        Args:
            context: the stream's ``grpc.aio.ServicerContext``.
            stream: what calls to the peer go through; default a NodeStream
                endpoint on this context (served by the NodeStream service).

        Returns:
            The cleanup to run when the stream ends, or None for an external
            or unknown caller.

        Raises:
            InvalidAddressError: ``gorums-addr`` is malformed.
            PeerAddressMismatchError: the claimed IP is not the connection's.
        """
        existing = self._by_context.get(context)
        if existing is not None:
            return existing.cleanup
        done = getattr(context, "done", None)
        if callable(done) and done():
            return None  # the caller gave up before its handler started
        metadata = tuple(context.invocation_metadata() or ())
        peer_string: str = context.peer()
        try:
            claimed = claimed_address(metadata)
        except InvalidAddressError as exc:
            self._record_reject("", peer_string, exc)
            raise
        if claimed is None:
            if any(key == GORUMS_CLIENT_KEY for key, _ in metadata):
                return self._register_client(peer_string, stream, context)
            return None
        peer = self.identify(context, claimed)
        if peer.id == EXTERNAL_ID or peer.id == self._my_id:
            return None
        return self.register_peer(
            peer.id, peer.address, stream or self._endpoint(peer), context, peer
        )

    def stream_of(self, context: object) -> Channel | None:
        """The stream registered for ``context``, if any."""
        link = self._by_context.get(context)
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
            KeyError: ``node_id`` is not a known node.
        """
        if node_id not in self._known:
            raise KeyError(f"node {node_id} is not a known node")
        link = _Link(peer or Peer(node_id, addr, ""), stream, context)
        link.cleanup = lambda: self._unregister(link)
        with self._lock:
            replaced = self._inbound.get(node_id)
            self._inbound[node_id] = link
            self._by_context[context] = link
            outbound = self._outbound.get(node_id)
            close_outbound = outbound is not None and self._my_id > node_id
            if close_outbound:
                del self._outbound[node_id]
            changed = self._update(node_id)
            decision = t.DECISION_REPLACED if replaced is not None else t.DECISION_REGISTERED
            self._record(t.SPAN_REGISTER, link.peer, decision)
            if outbound is not None:
                kept = t.DECISION_KEPT_INBOUND if close_outbound else t.DECISION_KEPT_OUTBOUND
                self._record(t.SPAN_TIEBREAK, link.peer, kept)
            if changed:
                self._changed()
        if replaced is not None:
            _close(replaced.stream)
        if close_outbound and outbound is not None and outbound.close is not None:
            outbound.close()
        return link.cleanup

    def add_outbound(self, node_id: int, stream: Channel, close: Callable[[], None]) -> Cleanup:
        """Offer an outbound stream to a known peer for the tiebreak.

        Of a pair's two streams, both sides use the one dialed by the lower
        ID. If this node has the higher ID and the peer's inbound stream is
        registered, ``close`` is called at once (now or when that inbound
        stream arrives); otherwise the outbound stream connects the peer.

        Returns:
            The function to call when the outbound stream ends.
        """
        if node_id not in self._known:
            raise KeyError(f"node {node_id} is not a known node")
        link = _Link(Peer(node_id, self._known[node_id], ""), stream, close=close)
        with self._lock:
            inbound = self._inbound.get(node_id)
            if inbound is not None and self._my_id > node_id:
                self._record(t.SPAN_TIEBREAK, link.peer, t.DECISION_KEPT_INBOUND)
                refused = True
            else:
                refused = False
                replaced = self._outbound.get(node_id)
                self._outbound[node_id] = link
                if inbound is not None:
                    self._record(t.SPAN_TIEBREAK, link.peer, t.DECISION_KEPT_OUTBOUND)
                if self._update(node_id):
                    self._changed()
        if refused:
            close()
            return _noop
        if replaced is not None and replaced.close is not None:
            replaced.close()
        return lambda: self._remove_outbound(link)

    def inbound_stream(self, node_id: int) -> Channel | None:
        """The registered inbound stream of ``node_id``, if any."""
        link = self._inbound.get(node_id)
        return link.stream if link is not None else None

    async def wait_for_config(
        self, cond: Callable[[Configuration], bool], timeout: float | None = None
    ) -> Configuration:
        """Wait until ``cond(inbound_config())`` holds; return that configuration.

        ``cond`` is checked again at every change of membership and whenever
        a node switches streams (a reconnect or a tiebreak); never polls.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
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

    async def _wait(
        self,
        current: Callable[[], Configuration],
        cond: Callable[[Configuration], bool],
        timeout: float | None,
    ) -> Configuration:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    waiter = loop.create_future()
                    entry = (loop, waiter)
                    with self._lock:
                        config = current()
                        if cond(config):
                            return config
                        self._waiters.append(entry)
                    try:
                        await waiter
                    finally:
                        with self._lock:
                            if entry in self._waiters:
                                self._waiters.remove(entry)
        except TimeoutError:
            raise TimeoutError(
                f"waited {timeout} s for {describe_condition(cond)}; the configuration was"
                f" {current()!r}"
            ) from None

    def _update(self, node_id: int) -> bool:
        """Attach node ``node_id`` to its preferred stream; True if membership changed.

        A change of stream alone wakes ``wait_for_config`` waiters too.
        """
        inbound = self._inbound.get(node_id)
        outbound = self._outbound.get(node_id)
        if inbound is not None and outbound is not None:
            chosen: _Link | None = outbound if self._my_id < node_id else inbound
        else:
            chosen = inbound or outbound
        node = self._nodes[node_id]
        stream = chosen.stream if chosen is not None else None
        if node.channel is not stream:
            node.attach(stream)
            self._wake_waiters()
        index = bisect.bisect_left(self._connected, node_id, key=_node_id)
        present = index < len(self._connected) and self._connected[index] is node
        if chosen is not None and not present:
            self._writable_connected().insert(index, node)
            return True
        if chosen is None and present:
            del self._writable_connected()[index]
            return True
        return False

    def _writable_connected(self) -> list[Node]:
        """The connected nodes, safe to change: copied if a snapshot still shares them."""
        ref, self._snapshot = self._snapshot, None
        if ref is not None and ref() is not None:
            self._connected = list(self._connected)
        return self._connected

    def _wake_waiters(self) -> None:
        if self._waiters:
            for loop, waiter in self._waiters:
                loop.call_soon_threadsafe(_wake, waiter)
            self._waiters.clear()

    def _changed(self) -> None:
        """Publish a membership change; called with the lock held."""
        self._wake_waiters()
        if self._on_change is not None:
            self._on_change(self.inbound_config())

    def _unregister(self, link: _Link) -> None:
        node_id = link.peer.id
        with self._lock:
            if self._by_context.get(link.context) is not link:
                return  # already cleaned up
            del self._by_context[link.context]
            if self._inbound.get(node_id) is not link:
                self._record(t.SPAN_UNREGISTER, link.peer, t.DECISION_STALE)
            else:
                del self._inbound[node_id]
                changed = self._update(node_id)
                self._record(t.SPAN_UNREGISTER, link.peer, t.DECISION_UNREGISTERED)
                if changed:
                    self._changed()
        _close(link.stream)

    def _unregister_client(self, link: _Link) -> None:
        with self._lock:
            if self._by_context.pop(link.context, None) is None:
                return
            del self._clients[link.peer.id]
            self._record(t.SPAN_UNREGISTER, link.peer, t.DECISION_UNREGISTERED)
            self._wake_waiters()
        _close(link.stream)

    def _remove_outbound(self, link: _Link) -> None:
        node_id = link.peer.id
        with self._lock:
            if self._outbound.get(node_id) is not link:
                return
            del self._outbound[node_id]
            if self._update(node_id):
                self._changed()

    def _register_client(
        self, peer_string: str, stream: Channel | None, context: object
    ) -> Cleanup:
        with self._lock:
            peer = Peer(next(self._client_ids), "", peer_string)
            link = _Link(peer, stream or self._endpoint(peer), context)
            link.cleanup = lambda: self._unregister_client(link)
            node = Node(peer.id, "", self._tracer)
            node.attach(link.stream)
            self._clients[peer.id] = node
            self._by_context[context] = link
            self._record(t.SPAN_REGISTER, peer, t.DECISION_REGISTERED)
            self._wake_waiters()
        return link.cleanup

    def _endpoint(self, peer: Peer) -> StreamEndpoint:
        return StreamEndpoint(
            peer,
            self._handlers,
            accepted=True,
            limits=self._limits,
            budget=self._budget,
            ids=self._message_ids,
        )

    def _identify_context(self, context: CallContext) -> Peer:
        metadata = context.invocation_metadata() or ()
        peer_string: str = context.peer()
        claimed = claimed_address(metadata)
        if claimed is None:
            return Peer(EXTERNAL_ID, "", peer_string)
        return self.identify(context, claimed)

    def _record(self, name: str, peer: Peer, decision: str) -> None:
        span = self._tracer.start_decision(name)
        if span.is_recording():
            span.set_attributes(self._attributes(peer, decision))
        span.end()

    def _record_reject(self, claimed: str, peer: str, exc: Exception) -> None:
        span = self._tracer.start_decision(t.SPAN_REJECT)
        if span.is_recording():
            span.set_attributes(
                self._attributes(Peer(EXTERNAL_ID, claimed, peer), t.DECISION_REJECTED)
            )
            span.set_attribute(t.ATTR_REASON, str(exc))
            span.set_status(StatusCode.ERROR, str(exc))
        span.end()

    def _attributes(self, peer: Peer, decision: str) -> dict[str, AttributeValue]:
        return {
            t.ATTR_NODE_ID: self._my_id,
            t.ATTR_PEER_ID: peer.id,
            t.ATTR_CLAIMED_ADDRESS: peer.address,
            t.ATTR_REAL_ADDRESS: peer.real_address,
            t.ATTR_DECISION: decision,
            t.ATTR_CONFIG_SIZE: len(self._connected),
        }


def describe_condition(cond: Callable[..., object]) -> str:
    """A condition's name for an error message (``<lambda> at file:line`` for a lambda)."""
    code = getattr(cond, "__code__", None)
    name = getattr(cond, "__qualname__", None) or repr(cond)
    if code is not None and name.endswith("<lambda>"):
        return f"the condition {name} at {code.co_filename}:{code.co_firstlineno}"
    return f"the condition {name}"


def _node_id(node: Node) -> int:
    return node.id


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _close(stream: object) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def _noop() -> None:
    pass
