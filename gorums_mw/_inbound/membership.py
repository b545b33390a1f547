"""Membership: which stream connects each peer, the tiebreak, snapshots and waiters.

No grpc and no telemetry here: each change returns an ``Outcome`` that
says what was decided and which streams to close; the caller records and
closes them outside the lock.

The tiebreak: when replicas A and B dial each other, both use the stream
dialed by the lower ID. The lower ID keeps its outbound stream; the higher
ID closes (retires) its own. A peer that does not follow this rule (Go
Gorums keeps both streams of a pair, and its configurations count only the
peers that dialed it) keeps both: its inbound stream is never the reason
to close our outbound one, and our calls to it go over our outbound stream
while that is up (Go serves a stream it accepted in order and knows who
sends on it; requests on a stream it dialed come with no caller and are
served concurrently). A new inbound stream of a peer always replaces the
earlier one (a reconnect, never a tiebreak).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from gorums_mw import _telemetry as t
from gorums_mw._calls.configuration import Configuration, ordered_configuration
from gorums_mw._calls.node import Node
from gorums_mw._calls.origin import Origin
from gorums_mw._identity.peer import MAX_NODE_ID, Peer
from gorums_mw._identity.registrar import Cleanup
from gorums_mw._stream.channel import Channel
from gorums_mw._telemetry import Telemetry

FIRST_CLIENT_ID = MAX_NODE_ID + 1
"""Client peers get IDs from here up, never colliding with configured IDs."""

ConfigCallback = Callable[[Configuration], None]


@dataclass(slots=True, eq=False)
class Link:
    """One registered stream of one peer."""

    peer: Peer
    stream: Channel
    context: object | None = None
    close: Callable[[], None] | None = None
    cleanup: Cleanup | None = None
    follows_tiebreak: bool = True
    """Whether the peer closes its own outbound stream when it has the higher ID
    (gorums-mw peers do; Go Gorums keeps both streams)."""


@dataclass(slots=True)
class Outcome:
    """What one change decided: spans to record, streams to close."""

    decisions: list[tuple[str, Peer, str]] = field(default_factory=list)
    close: list[Callable[[], None]] = field(default_factory=list)
    size: int = 0


class Membership:
    """The connected peers of one node, over the streams their pairs agreed on.

    Thread-safe: every change happens under one lock, and ``on_change``
    runs under it (so callbacks arrive in order; they may call back in).
    """

    def __init__(
        self,
        my_id: int,
        known: dict[int, str],
        telemetry: Telemetry,
        on_change: ConfigCallback | None,
        origin: Origin,
    ) -> None:
        self.my_id = my_id
        self._origin = origin
        self.lock = threading.RLock()
        self._telemetry = telemetry
        self._on_change = on_change
        self._nodes = {node_id: Node(node_id, addr, telemetry) for node_id, addr in known.items()}
        self._inbound: dict[int, Link] = {}
        self._outbound: dict[int, Link] = {}
        self.by_context: dict[object, Link] = {}
        self._connected: list[Node] = []
        self._snapshot: weakref.ref[Configuration] | None = None
        self.clients: dict[int, Node] = {}
        self._client_ids = itertools.count(FIRST_CLIENT_ID)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def connected_ids(self) -> list[int]:
        """IDs of the connected peers, ascending."""
        return [node.id for node in self._connected]

    @property
    def inbound_ids(self) -> list[int]:
        """IDs of the peers with a registered inbound stream."""
        return list(self._inbound)

    @property
    def outbound_ids(self) -> list[int]:
        """IDs of the peers with an outbound stream."""
        return list(self._outbound)

    def config(self) -> Configuration:
        """The connected peers: an immutable snapshot, shared until the next change."""
        ref = self._snapshot
        snapshot = ref() if ref is not None else None
        if snapshot is None:
            with self.lock:
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
        """The connected client peers."""
        with self.lock:
            return ordered_configuration(
                tuple(self.clients.values()), self._telemetry, self.clients.get
            )

    def node(self, node_id: int) -> Node | None:
        """The handle of known peer ``node_id`` (connected or not)."""
        return self._nodes.get(node_id)

    def inbound_stream(self, node_id: int) -> Link | None:
        """The registered inbound link of ``node_id``, if any."""
        return self._inbound.get(node_id)

    def register_inbound(self, link: Link) -> Outcome:
        """Make ``link`` the inbound stream of its peer; a new one replaces the old."""
        node_id = link.peer.id
        outcome = Outcome()
        with self.lock:
            replaced = self._inbound.get(node_id)
            self._inbound[node_id] = link
            self.by_context[link.context] = link
            outbound = self._outbound.get(node_id)
            close_outbound = outbound is not None and self.loses_tiebreak(link)
            if close_outbound:
                del self._outbound[node_id]
            changed = self._update(node_id)
            outcome.size = len(self._connected)
            decision = t.DECISION_REPLACED if replaced is not None else t.DECISION_REGISTERED
            outcome.decisions.append((t.SPAN_REGISTER, link.peer, decision))
            if outbound is not None:
                outcome.decisions.append(
                    (t.SPAN_TIEBREAK, link.peer, self._tiebreak(link, close_outbound))
                )
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
        with self.lock:
            inbound = self._inbound.get(node_id)
            outcome.size = len(self._connected)
            if inbound is not None and self.loses_tiebreak(inbound):
                outcome.decisions.append((t.SPAN_TIEBREAK, link.peer, t.DECISION_KEPT_INBOUND))
                return outcome, False
            replaced = self._outbound.get(node_id)
            self._outbound[node_id] = link
            if inbound is not None:
                decision = self._tiebreak(inbound, False)
                outcome.decisions.append((t.SPAN_TIEBREAK, link.peer, decision))
            if self._update(node_id):
                self._changed()
            outcome.size = len(self._connected)
        if replaced is not None and replaced.close is not None:
            outcome.close.append(replaced.close)
        return outcome, True

    def remove_outbound(self, link: Link) -> None:
        """An outbound stream ended."""
        node_id = link.peer.id
        with self.lock:
            if self._outbound.get(node_id) is not link:
                return
            del self._outbound[node_id]
            if self._update(node_id):
                self._changed()

    def unregister(self, link: Link) -> Outcome:
        """A registered inbound stream ended; a late cleanup of a replaced one removes nothing."""
        node_id = link.peer.id
        outcome = Outcome()
        with self.lock:
            if self.by_context.get(link.context) is not link:
                return outcome  # already cleaned up
            del self.by_context[link.context]
            if self._inbound.get(node_id) is not link:
                decision = t.DECISION_STALE
            else:
                del self._inbound[node_id]
                changed = self._update(node_id)
                # Still connected over the outbound stream: this one lost a tiebreak.
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
        with self.lock:
            peer_id = next(self._client_ids)
            link = make_link(Peer(peer_id, "", peer_string))
            node = Node(peer_id, "", self._telemetry)
            node.attach(link.stream)
            self.clients[peer_id] = node
            self.by_context[link.context] = link
            outcome.size = len(self._connected)
            outcome.decisions.append((t.SPAN_REGISTER, link.peer, t.DECISION_REGISTERED))
            self._wake_waiters()
        return link, outcome

    def unregister_client(self, link: Link) -> Outcome:
        """A client peer's stream ended."""
        outcome = Outcome()
        with self.lock:
            if self.by_context.pop(link.context, None) is None:
                return outcome
            del self.clients[link.peer.id]
            outcome.size = len(self._connected)
            outcome.decisions.append((t.SPAN_UNREGISTER, link.peer, t.DECISION_UNREGISTERED))
            self._wake_waiters()
        outcome.close.append(_closer(link.stream))
        return outcome

    def add_waiter(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]) -> None:
        """Wake ``entry`` at the next change (call with the lock held)."""
        self._waiters.append(entry)

    def remove_waiter(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]) -> None:
        """Forget ``entry`` if it was not woken."""
        with self.lock:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def loses_tiebreak(self, inbound: Link) -> bool:
        """Whether our outbound stream to ``inbound``'s peer gives way to it."""
        return self.my_id > inbound.peer.id and inbound.follows_tiebreak

    def _tiebreak(self, inbound: Link, closed_outbound: bool) -> str:
        if closed_outbound:
            return t.DECISION_KEPT_INBOUND
        if self.my_id > inbound.peer.id:
            return t.DECISION_KEPT_BOTH  # a peer that keeps both streams (Go Gorums)
        return t.DECISION_KEPT_OUTBOUND

    def _update(self, node_id: int) -> bool:
        """Attach node ``node_id`` to its preferred stream; True if membership changed.

        A change of stream alone wakes ``wait_for_config`` waiters too.
        """
        inbound = self._inbound.get(node_id)
        outbound = self._outbound.get(node_id)
        if inbound is not None and outbound is not None:
            chosen: Link | None = inbound if self.loses_tiebreak(inbound) else outbound
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
