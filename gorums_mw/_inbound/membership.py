"""Membership: which stream connects each peer, snapshots and waiters.

No grpc and no telemetry here: each change returns an ``Outcome`` that
says what was decided and which streams to close; the caller settles it
(records and closes) outside the lock.

When a peer has both an inbound and an outbound stream, the ``PairRule``
decides which one carries its calls and whether the outbound one closes.
A new inbound stream of a peer always replaces the earlier one (a
reconnect, never a pair decision).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from gorums_mw import _telemetry as t
from gorums_mw._calls.configuration import Configuration, ordered_configuration
from gorums_mw._calls.node import Node
from gorums_mw._calls.origin import Origin
from gorums_mw._identity.peer import MAX_NODE_ID, Peer
from gorums_mw._identity.registrar import Cleanup
from gorums_mw._inbound.decisions import Outcome
from gorums_mw._inbound.pair_rule import PairRule
from gorums_mw._lifecycle import Lifecycle
from gorums_mw._stream.channel import Channel
from gorums_mw._telemetry import Telemetry

FIRST_CLIENT_ID = MAX_NODE_ID + 1
"""Client peers get IDs from here up, never colliding with configured IDs."""

ConfigCallback = Callable[[Configuration], None]

Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]


@dataclass(slots=True, eq=False)
class Link:
    """One registered stream of one peer."""

    peer: Peer
    stream: Channel
    context: object | None = None
    close: Callable[[], None] | None = None
    cleanup: Cleanup | None = None
    follows_rule: bool = True
    """Whether the peer follows the pair rule (gorums-mw peers do; Go Gorums keeps both streams)."""


@dataclass(frozen=True, slots=True)
class MembershipStats:
    """What a membership holds now, for tests, ``repr`` and metrics.

    Attributes:
        peers: IDs of the connected peers, ascending.
        inbound: IDs of the peers with a registered inbound stream, ascending.
        outbound: IDs of the peers with an outbound stream offered by a dialer, ascending.
        clients: connected client peers.
        registrations: registered streams (inbound peers and clients).
    """

    peers: tuple[int, ...]
    inbound: tuple[int, ...]
    outbound: tuple[int, ...]
    clients: int
    registrations: int


class Membership:
    """The connected peers of one node, over the streams their pairs agreed on.

    Thread-safe: every change happens under one lock, and ``on_change``
    runs under it (so callbacks arrive in order; they may call back in).
    Its nodes and configurations belong to ``owner``: calls through them
    raise once it stops.
    """

    def __init__(
        self,
        my_id: int,
        nodes: dict[int, str],
        telemetry: Telemetry,
        on_change: ConfigCallback | None,
        owner: Lifecycle,
    ) -> None:
        self._my_id = my_id
        self._owner = owner
        self._origin = Origin(frozenset(nodes), (owner,))
        self._lock = threading.RLock()
        self._telemetry = telemetry
        self._on_change = on_change
        self._nodes = {
            node_id: Node(node_id, addr, telemetry, owner)
            for node_id, addr in nodes.items()
            if node_id != my_id
        }
        self._inbound: dict[int, Link] = {}
        self._outbound: dict[int, Link] = {}
        self._by_context: dict[object, Link] = {}
        self._connected: list[Node] = []
        self._snapshot: weakref.ref[Configuration] | None = None
        self._clients: dict[int, Node] = {}
        self._client_ids = itertools.count(FIRST_CLIENT_ID)
        self._waiters: list[Waiter] = []

    @property
    def size(self) -> int:
        """How many peers are connected."""
        return len(self._connected)

    def client_count(self) -> int:
        """How many client peers are connected (read without the lock)."""
        return len(self._clients)

    def stats(self) -> MembershipStats:
        """What this membership holds now."""
        with self._lock:
            return MembershipStats(
                tuple(node.id for node in self._connected),
                tuple(sorted(self._inbound)),
                tuple(sorted(self._outbound)),
                len(self._clients),
                len(self._by_context),
            )

    def streams(self) -> list[Channel]:
        """The registered streams (inbound peers and clients)."""
        with self._lock:
            return [link.stream for link in self._by_context.values()]

    def cleanups(self) -> list[Cleanup]:
        """The cleanups of the registered streams (each unregisters and closes its stream)."""
        with self._lock:
            return [link.cleanup for link in self._by_context.values() if link.cleanup is not None]

    def config(self) -> Configuration:
        """The connected peers: an immutable snapshot, shared until the next change."""
        ref = self._snapshot
        snapshot = ref() if ref is not None else None
        if snapshot is None:
            with self._lock:
                ref = self._snapshot
                snapshot = ref() if ref is not None else None
                if snapshot is None:
                    # Shares the list: _writable_connected copies it before a
                    # change while this snapshot is alive (copy on write).
                    snapshot = ordered_configuration(
                        self._connected, self._telemetry, self.node, self._origin
                    )
                    self._snapshot = weakref.ref(snapshot)
        return snapshot

    def client_config(self) -> Configuration:
        """The connected client peers (no set configures them: their quorums count them)."""
        with self._lock:
            clients = self._clients
            origin = Origin(frozenset(clients), (self._owner,))
            return ordered_configuration(
                tuple(clients.values()), self._telemetry, clients.get, origin
            )

    def node(self, node_id: int) -> Node | None:
        """The handle of known peer ``node_id`` (connected or not)."""
        return self._nodes.get(node_id)

    def link_of(self, context: object) -> Link | None:
        """The link registered for ``context``, if any."""
        return self._by_context.get(context)

    def inbound_stream(self, node_id: int) -> Channel | None:
        """The registered inbound stream of ``node_id``, if any."""
        link = self._inbound.get(node_id)
        return link.stream if link is not None else None

    def dials(self, node_id: int) -> bool:
        """Whether this node dials ``node_id`` now: unless the pair rule says to
        use the peer's inbound stream, which is up."""
        inbound = self._inbound.get(node_id)
        return inbound is None or self._rule(inbound).dials

    def register_inbound(self, link: Link) -> Outcome:
        """Make ``link`` the inbound stream of its peer; a new one replaces the old."""
        node_id = link.peer.id
        outcome = Outcome()
        rule = self._rule(link)
        with self._lock:
            replaced = self._inbound.get(node_id)
            self._inbound[node_id] = link
            self._by_context[link.context] = link
            outbound = self._outbound.get(node_id)
            close_outbound = outbound is not None and rule.keeps == "inbound"
            if close_outbound:
                del self._outbound[node_id]
            changed = self._update(node_id)
            outcome.size = len(self._connected)
            decision = t.DECISION_REPLACED if replaced is not None else t.DECISION_REGISTERED
            outcome.decisions.append((t.SPAN_REGISTER, link.peer, decision))
            if outbound is not None:
                outcome.decisions.append((t.SPAN_TIEBREAK, link.peer, rule.decision))
            if changed:
                self._changed()
        if replaced is not None:
            outcome.close.append(_closer(replaced.stream))
        if close_outbound and outbound is not None and outbound.close is not None:
            outcome.close.append(outbound.close)
        return outcome

    def add_outbound(self, link: Link) -> tuple[Outcome, bool]:
        """Offer an outbound stream; return the outcome and whether it was kept."""
        node_id = link.peer.id
        outcome = Outcome()
        with self._lock:
            inbound = self._inbound.get(node_id)
            rule = self._rule(inbound) if inbound is not None else None
            outcome.size = len(self._connected)
            if rule is not None and rule.keeps == "inbound":
                outcome.decisions.append((t.SPAN_TIEBREAK, link.peer, rule.decision))
                return outcome, False
            replaced = self._outbound.get(node_id)
            self._outbound[node_id] = link
            if rule is not None:
                outcome.decisions.append((t.SPAN_TIEBREAK, link.peer, rule.decision))
            if self._update(node_id):
                self._changed()
            outcome.size = len(self._connected)
        if replaced is not None and replaced.close is not None:
            outcome.close.append(replaced.close)
        return outcome, True

    def remove_outbound(self, link: Link) -> None:
        """An outbound stream ended."""
        node_id = link.peer.id
        with self._lock:
            if self._outbound.get(node_id) is not link:
                return
            del self._outbound[node_id]
            if self._update(node_id):
                self._changed()

    def unregister(self, link: Link) -> Outcome:
        """A registered inbound stream ended; a late cleanup of a replaced one removes nothing."""
        node_id = link.peer.id
        outcome = Outcome()
        with self._lock:
            if self._by_context.get(link.context) is not link:
                return outcome  # already cleaned up
            del self._by_context[link.context]
            if self._inbound.get(node_id) is not link:
                decision = t.DECISION_STALE
            else:
                del self._inbound[node_id]
                changed = self._update(node_id)
                # Still connected over the outbound stream: this one lost to it.
                decision = (
                    t.DECISION_RETIRED if node_id in self._outbound else (t.DECISION_UNREGISTERED)
                )
                if changed:
                    self._changed()
            outcome.size = len(self._connected)
            outcome.decisions.append((t.SPAN_UNREGISTER, link.peer, decision))
        outcome.close.append(_closer(link.stream))
        return outcome

    def register_client(
        self, peer_string: str, make_link: Callable[[Peer], Link]
    ) -> tuple[Link, Outcome]:
        """Give a client peer a fresh ID and register the link ``make_link`` builds for it."""
        outcome = Outcome()
        with self._lock:
            peer_id = next(self._client_ids)
            link = make_link(Peer(peer_id, "", peer_string))
            node = Node(peer_id, "", self._telemetry, self._owner)
            node.attach(link.stream)
            self._clients[peer_id] = node
            self._by_context[link.context] = link
            outcome.size = len(self._connected)
            outcome.decisions.append((t.SPAN_REGISTER, link.peer, t.DECISION_REGISTERED))
            self._wake_waiters()
        return link, outcome

    def unregister_client(self, link: Link) -> Outcome:
        """A client peer's stream ended."""
        outcome = Outcome()
        with self._lock:
            if self._by_context.pop(link.context, None) is None:
                return outcome
            del self._clients[link.peer.id]
            outcome.size = len(self._connected)
            outcome.decisions.append((t.SPAN_UNREGISTER, link.peer, t.DECISION_UNREGISTERED))
            self._wake_waiters()
        outcome.close.append(_closer(link.stream))
        return outcome

    async def wait_for(
        self, current: Callable[[], Configuration], cond: Callable[[Configuration], bool]
    ) -> Configuration:
        """Return ``current()`` once ``cond`` holds for it: checked under the
        lock now and after every change (a stream switch included); never polls."""
        loop = asyncio.get_running_loop()
        while True:
            waiter: Waiter = (loop, loop.create_future())
            with self._lock:
                config = current()
                if cond(config):
                    return config
                self._waiters.append(waiter)
            try:
                await waiter[1]
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    def _rule(self, inbound: Link) -> PairRule:
        """The pair rule between this node and ``inbound``'s peer."""
        return PairRule(self._my_id, inbound.peer.id, inbound.follows_rule)

    def _update(self, node_id: int) -> bool:
        """Attach node ``node_id`` to the stream its pair uses; True if membership changed.

        A change of stream alone wakes ``wait_for`` waiters too.
        """
        inbound = self._inbound.get(node_id)
        outbound = self._outbound.get(node_id)
        if inbound is not None and outbound is not None:
            keeps_inbound = self._rule(inbound).keeps == "inbound"
            chosen: Link | None = inbound if keeps_inbound else outbound
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
            self._on_change(self.config())


def _node_id(node: Node) -> int:
    return node.id


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _closer(stream: object) -> Callable[[], None]:
    close = getattr(stream, "close", None)
    return close if callable(close) else noop


def noop() -> None:
    """Does nothing: the cleanup of what needs none."""
