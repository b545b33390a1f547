"""A configuration: an immutable sequence of nodes to call, and the algebra to reshape it."""

from __future__ import annotations

import functools
import itertools
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import grpc
from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls.common import (
    Entries,
    NodeReply,
    QuorumFunction,
    R,
    checked_metadata,
    checked_method,
    deadline_of,
)
from gorums_mw._calls.interception import CallInfo, QuorumInterceptor, intercept
from gorums_mw._calls.node import Node
from gorums_mw._calls.quorum import UNDECIDED, collect, threshold
from gorums_mw._calls.quorum import decide as decide_answers
from gorums_mw._calls.replies import (
    casts,
    close,
    improving,
    stream_replies,
    unary_replies,
    without_errors,
)
from gorums_mw._calls.trace import CallTrace
from gorums_mw._errors import QuorumCallError
from gorums_mw._lifecycle import Lifecycle
from gorums_mw._telemetry import (
    ATTR_CONFIG_SIZE,
    ATTR_QUORUM,
    SPAN_CORRECTABLE,
    SPAN_MULTICAST,
    SPAN_QUORUM_CALL,
    Telemetry,
)

T = TypeVar("T")
Q = TypeVar("Q", bound=ProtoMessage)

NodeLookup = Callable[[int], Node | None]
"""Finds the node with an ID among those its owner (a manager) knows."""


@dataclass(frozen=True, slots=True, eq=False)
class Origin:
    """Where a configuration comes from: the configured replicas, and who runs their streams.

    Quorums are sized by this set, never by the nodes connected now: a
    replica cut off from the others must not decide alone.

    Attributes:
        ids: the configured node IDs (the ``with_nodes`` set).
        owners: the lifecycles of the ``System`` or managers whose streams
            carry the calls; a call through one not started fails at once.
    """

    ids: frozenset[int]
    owners: tuple[Lifecycle, ...] = ()

    def require_started(self) -> None:
        """Raise unless every owner is running.

        Raises:
            RuntimeError: an owner was never started, or has stopped.
        """
        for owner in self.owners:
            owner.require_started()

    def join(self, other: Origin) -> Origin:
        """The origin of a configuration combining nodes of both."""
        if other is self:
            return self
        owners = (*self.owners, *(o for o in other.owners if o not in self.owners))
        return Origin(self.ids | other.ids, owners)


class Configuration(Sequence[Node]):
    """An immutable sequence of nodes on which calls are made.

    Holding an old configuration is safe: its membership never changes, and
    each of its nodes fails fast while disconnected. Configurations from a
    manager are ID-sorted; ``sorted_by`` orders one otherwise. Reshaping
    returns new configurations of the same node handles: ``a | b``,
    ``a & b``, ``a - b``, ``add``, ``remove``, ``sorted_by`` and
    ``without_errors``. Configurations of different managers (say an
    inbound one and a dialed one) combine as long as no ID names two
    different nodes (``ValueError`` otherwise). Calls must be made on the
    event loop that runs the nodes' streams (``RuntimeError`` otherwise).
    """

    __slots__ = ("__weakref__", "_lookup", "_nodes", "_origin", "_telemetry")

    def __init__(
        self,
        nodes: Iterable[Node] = (),
        *,
        telemetry: Telemetry | None = None,
        lookup: NodeLookup | None = None,
    ) -> None:
        """Build a configuration of ``nodes``, ID-sorted.

        Args:
            nodes: the nodes.
            telemetry: where its calls' spans and metrics go.
            lookup: how ``add`` finds nodes by ID (a manager's nodes);
                default: among ``nodes`` only.

        Raises:
            ValueError: two nodes share an ID.
        """
        ordered = tuple(sorted(nodes, key=_node_id))
        for before, after in itertools.pairwise(ordered):
            if before.id == after.id:
                raise ValueError(f"node ID {after.id} appears twice in a configuration")
        self._nodes: Sequence[Node] = ordered
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._lookup = lookup
        self._origin: Origin | None = None

    def __repr__(self) -> str:
        return f"<Configuration ids={list(self.ids)}>"

    def __len__(self) -> int:
        return len(self._nodes)

    @overload
    def __getitem__(self, index: int) -> Node: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Node]: ...
    def __getitem__(self, index: int | slice) -> Node | Sequence[Node]:
        return self._nodes[index]

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    def __contains__(self, item: object) -> bool:
        """Whether a node ID (``2 in config``) or a node handle is in the configuration."""
        if isinstance(item, Node):
            return any(node is item for node in self._nodes)
        return any(node.id == item for node in self._nodes)

    def __eq__(self, other: object) -> bool:
        """The same node handles in the same order."""
        if not isinstance(other, Configuration):
            return NotImplemented
        return len(self._nodes) == len(other._nodes) and all(
            mine is theirs for mine, theirs in zip(self._nodes, other._nodes, strict=True)
        )

    def __hash__(self) -> int:
        return hash(self.ids)

    def __or__(self, other: Configuration) -> Configuration:
        """The nodes of either configuration, ID-sorted (union)."""
        if not isinstance(other, Configuration):
            return NotImplemented
        return self._combine(other, _merge(self, other).values())

    def __and__(self, other: Configuration) -> Configuration:
        """The nodes of both configurations, ID-sorted (intersection)."""
        if not isinstance(other, Configuration):
            return NotImplemented
        theirs = _by_id(other)
        _check_same(self, theirs)
        return self._combine(other, (node for node in self._nodes if node.id in theirs))

    def __sub__(self, other: Configuration) -> Configuration:
        """The nodes of this configuration not in ``other``, order kept (difference)."""
        if not isinstance(other, Configuration):
            return NotImplemented
        theirs = _by_id(other)
        kept = tuple(node for node in self._nodes if node.id not in theirs)
        return ordered_configuration(kept, self._telemetry, self._lookup, self._joined(other))

    @property
    def ids(self) -> tuple[int, ...]:
        """The node IDs, in the configuration's order."""
        return tuple(node.id for node in self._nodes)

    def node(self, node_id: int) -> Node:
        """The node with ID ``node_id``.

        Raises:
            KeyError: no such node in this configuration (the message lists its IDs).
        """
        for node in self._nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"node {node_id!r} is not in this configuration (IDs {list(self.ids)})")

    @property
    def configured(self) -> int:
        """How many replicas are configured where this configuration comes from
        (a manager's ``with_nodes`` set), or its own size when it comes from
        bare nodes (or from client peers, which no set configures)."""
        origin = self._origin
        return len(self._nodes) if origin is None else len(origin.ids)

    def majority(self) -> int:
        """The default quorum size: more than half of the configured replicas
        (``configured``), however many of them are connected now."""
        return self.configured // 2 + 1

    def add(self, *node_ids: int) -> Configuration:
        """This configuration plus the nodes with ``node_ids``, ID-sorted.

        The nodes come from the manager this configuration came from (an
        ID already here is kept once).

        Raises:
            KeyError: an ID names no node the manager knows.
        """
        found = []
        present = set(self.ids)
        for node_id in node_ids:
            if node_id in present:
                continue
            node = self._lookup(node_id) if self._lookup is not None else None
            if node is None:
                raise KeyError(f"node {node_id!r} is not a node this configuration's manager knows")
            found.append(node)
        return self._derive(itertools.chain(self._nodes, found), sort=True)

    def remove(self, *node_ids: int) -> Configuration:
        """This configuration without the nodes with ``node_ids`` (absent IDs are ignored)."""
        gone = set(node_ids)
        return self._derive(node for node in self._nodes if node.id not in gone)

    def sorted_by(self, key: Callable[[Node], Any], *, reverse: bool = False) -> Configuration:
        """The same nodes ordered by ``key`` (stable), e.g. ``sorted_by(lambda n: n.latency)``.

        A ``key`` that returns None for some nodes (a node never measured)
        puts those last.
        """

        def total(node: Node) -> tuple[bool, Any]:
            value = key(node)
            return (value is None) != reverse, value if value is not None else 0

        return self._derive(sorted(self._nodes, key=total, reverse=reverse))

    def without_errors(self, error: QuorumCallError, *codes: grpc.StatusCode) -> Configuration:
        """This configuration without the nodes that failed the quorum call ``error`` reports.

        Args:
            error: the failed call's error.
            codes: drop only nodes that failed with one of these codes
                (default: every node that failed).
        """
        failed = {
            node_id for node_id, cause in error.errors.items() if not codes or cause.code in codes
        }
        return self.remove(*failed)

    def _derive(self, nodes: Iterable[Node], *, sort: bool = False) -> Configuration:
        """A configuration of ``nodes`` with this one's telemetry, lookup and
        origin, ID-sorted if ``sort``, else in the order given."""
        kept = tuple(sorted(nodes, key=_node_id)) if sort else tuple(nodes)
        return ordered_configuration(kept, self._telemetry, self._lookup, self._origin)

    def _combine(self, other: Configuration, nodes: Iterable[Node]) -> Configuration:
        """The ID-sorted configuration of ``nodes``, taken from this one and ``other``."""
        kept = tuple(sorted(nodes, key=_node_id))
        return ordered_configuration(kept, self._telemetry, self._lookup, self._joined(other))

    def _joined(self, other: Configuration) -> Origin | None:
        """The origin of a combination: both configured sets (a configuration
        of bare nodes counts as its own nodes), so no combination sizes its
        quorums by fewer replicas than either part."""
        mine, theirs = self._origin, other._origin
        if mine is None and theirs is None:
            return None
        mine = mine or Origin(frozenset(self.ids))
        return mine.join(theirs or Origin(frozenset(other.ids)))

    # --- calls -------------------------------------------------------------------------

    @overload
    async def quorum_call(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        quorum: int | None = None,
        timeout: float | None = None,
        quorum_function: None = None,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> dict[int, R]: ...
    @overload
    async def quorum_call(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        quorum: None = None,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T],
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> T: ...
    async def quorum_call(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        quorum: int | None = None,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T] | None = None,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> dict[int, R] | T:
        """Call ``method`` on every node; return once a quorum is reached.

        The request goes to every node at once. Without ``quorum_function``
        the call returns the replies as soon as ``quorum`` of them are in
        (Go Gorums' ``Majority()``, ``Threshold(n)``, ``First()``, ``All()``
        are ``quorum=None``, ``n``, ``1``, ``len(config)``). With it, the
        function is called with the replies received so far after each
        reply, and the first value it returns that is not None is the
        call's result (Go's quorum functions). A node's error never counts
        as a reply.

        Args:
            method: the protobuf full method name, ``pkg.Service.Method``
                (or grpc's ``/pkg.Service/Method``).
            request: the request message, sent to every node.
            reply_type: the generated class of the reply.
            quorum: replies needed, at least 1; default a majority.
            timeout: seconds for the whole call, including any wait for room
                in a node's send buffer; None waits until every node has
                replied or failed.
            quorum_function: decides when the call is done and what it
                returns; replaces ``quorum``.
            metadata: ``(key, value)`` entries sent with every request (the
                handlers read them as invocation metadata).
            interceptors: wrap the call (``QuorumInterceptor``): per-node
                requests, filtered or rewritten replies, an early end.

        Returns:
            The replies received, by node ID (at least ``quorum`` of them), or
            the quorum function's result.

        Raises:
            ValueError: ``quorum`` is below 1, or ``method`` is malformed.
            TypeError: the request or reply type is not the method's (when
                its service is known locally).
            QuorumCallError: the quorum cannot be reached: the configuration
                is too small, or too many nodes failed or timed out; it lists
                each node's failure.
            RuntimeError: called outside the event loop of the streams.
        """
        self._require_started()
        name = checked_method(method, request, reply_type)
        deadline = deadline_of(timeout)
        entries = checked_metadata(metadata)
        if quorum_function is None:
            needed = self._needed(name, quorum)
            decide: QuorumFunction[R, object] = functools.partial(threshold, needed)
        else:
            if quorum is not None:
                raise ValueError("give quorum or quorum_function, not both")
            needed, decide = 0, quorum_function
        with CallTrace(
            self._telemetry,
            SPAN_QUORUM_CALL,
            "quorum_call",
            name,
            {ATTR_CONFIG_SIZE: len(self._nodes), ATTR_QUORUM: needed},
        ) as call:
            if interceptors:
                info = CallInfo(name, request, self, entries)
                source = unary_replies(info, reply_type, deadline, timeout, call)
                try:
                    answers = intercept(info, source, interceptors)
                    result, replies, errors = await decide_answers(answers, decide)
                finally:
                    await source.aclose()
            else:
                result, replies, errors = await collect(
                    self._nodes,
                    name,
                    request,
                    reply_type,
                    needed,
                    decide,
                    deadline,
                    timeout,
                    entries,
                    call,
                )
            call.finish(replies=len(replies))
            if result is UNDECIDED:
                raise QuorumCallError(name, needed, replies, errors)
            return result  # type: ignore[return-value]

    async def replies(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        ignore_errors: bool = False,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> AsyncIterator[NodeReply[R]]:
        """Call ``method`` on every node and yield each answer as it arrives.

        For custom aggregation (Go Gorums' ``Results()``): stop iterating as
        soon as you have what you need; the calls still outstanding are then
        abandoned. Yields one ``NodeReply`` per node, holding the reply or
        the node's error (a node still silent when ``timeout`` passes gets
        ``DEADLINE_EXCEEDED``).

        Args:
            method: as ``quorum_call``.
            request: the request message, sent to every node.
            reply_type: the generated class of the reply.
            timeout: seconds for the whole call.
            ignore_errors: yield only replies, never errors (Go's ``IgnoreErrors()``).
            metadata: as ``quorum_call``.
            interceptors: as ``quorum_call``.
        """
        self._require_started()
        name = checked_method(method, request, reply_type)
        deadline = deadline_of(timeout)
        info = CallInfo(name, request, self, checked_metadata(metadata))
        answers = self._answers(
            SPAN_QUORUM_CALL,
            "replies",
            info,
            lambda call: unary_replies(info, reply_type, deadline, timeout, call),
            interceptors,
        )
        try:
            async for answer in answers:
                if answer.error is None or not ignore_errors:
                    yield answer
        finally:
            await answers.aclose()

    @overload
    def correctable(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: None = None,
        ignore_errors: bool = False,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> AsyncIterator[NodeReply[R]]: ...
    @overload
    def correctable(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T],
        ignore_errors: bool = False,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> AsyncIterator[T]: ...
    def correctable(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T] | None = None,
        ignore_errors: bool = False,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> AsyncIterator[NodeReply[R]] | AsyncIterator[T]:
        """Call a server-streaming method on every node; yield replies or improving results.

        Go Gorums' correctable calls: each node may send several replies.
        Without ``quorum_function`` every reply of every node is yielded as
        it arrives (a node's error ends that node's replies). With it, the
        function is called with the latest reply of each node after every
        reply, and each result that is not None is yielded: results that
        improve as replies come in. Nothing on the wire marks a node's last
        reply (as upstream), so the iteration ends when ``timeout`` passes,
        when every node has failed, or when you stop iterating.

        Args:
            method, request, reply_type, metadata, interceptors: as ``quorum_call``.
            timeout: seconds until the iteration ends.
            quorum_function: turns the latest replies into a result.
            ignore_errors: without ``quorum_function``, yield only replies.

        Raises:
            ValueError, TypeError: as ``quorum_call`` (at once).
            RuntimeError: called outside the event loop of the streams.
        """
        self._require_started()
        name = checked_method(method, request, reply_type, "server_streaming")
        deadline = deadline_of(timeout)
        entries = checked_metadata(metadata)
        info = CallInfo(name, request, self, entries)
        arrivals = self._answers(
            SPAN_CORRECTABLE,
            "correctable",
            info,
            lambda call: stream_replies(info, reply_type, deadline, call),
            interceptors,
        )
        if quorum_function is None:
            return without_errors(arrivals) if ignore_errors else arrivals
        return improving(arrivals, quorum_function)

    async def _answers(
        self,
        span: str,
        kind: str,
        info: CallInfo[Q],
        source: Callable[[CallTrace], AsyncGenerator[NodeReply[R], None]],
        interceptors: Sequence[QuorumInterceptor[Q, R]],
    ) -> AsyncGenerator[NodeReply[R], None]:
        """The answers of a call that yields them (``replies``, ``correctable``):
        ``source``'s, through the interceptors, recorded as one traced call."""
        size = {ATTR_CONFIG_SIZE: len(self)}
        with CallTrace(self._telemetry, span, kind, info.method, size) as call:
            replies = source(call)
            answers = intercept(info, replies, interceptors)
            received = 0
            try:
                async for answer in answers:
                    received += answer.error is None
                    yield answer
            finally:
                await close(answers)
                await replies.aclose()
                call.finish(replies=received)

    async def multicast(
        self,
        method: str,
        request: Q,
        *,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, Any]] = (),
    ) -> tuple[int, ...]:
        """Send ``method`` one-way to every connected node; never waits.

        A node that is disconnected, or whose send buffer is full (a peer
        that stopped reading), does not get its copy: it is dropped, not
        queued, so one stuck peer never blocks the others. Interceptors can
        give each node its own request (``CallInfo.map_request``); there are
        no replies for them to see.

        Returns:
            The IDs of the nodes it was sent to.

        Raises:
            ValueError, TypeError: as ``quorum_call``.
            RuntimeError: called outside the event loop of the streams.
        """
        self._require_started()
        name = checked_method(method, request, None)
        entries = checked_metadata(metadata)
        size = {ATTR_CONFIG_SIZE: len(self)}
        with CallTrace(self._telemetry, SPAN_MULTICAST, "multicast", name, size) as call:
            info = CallInfo(name, request, self, entries)
            sent: list[int] = []
            if interceptors:
                answers = intercept(info, casts(info, call, sent), interceptors)
                async for _ in answers:
                    pass
            else:
                payload = request.SerializeToString()
                sent = [
                    node.id
                    for node in self._nodes
                    if node.cast(name, payload, call.entries(node, entries))
                ]
            call.finish(sent=len(sent))
            return tuple(sent)

    def _needed(self, method: str, quorum: int | None) -> int:
        if quorum is None:
            needed = self.majority()
            why = (
                f"a majority of the {self.configured} configured"
                if self._origin is not None
                else "a majority of its nodes"
            )
        elif isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
            raise ValueError(f"quorum must be a positive int, got {quorum!r}")
        else:
            needed = quorum
            why = f"quorum={quorum}"
            if self._origin is not None:
                why += f"; {self.configured} are configured"
        if needed > len(self._nodes):
            reason = (
                f"needs {needed} {'replica' if needed == 1 else 'replicas'} ({why}),"
                f" and this configuration has"
                f" {len(self._nodes)} ({list(self.ids)})"
            )
            raise QuorumCallError(method, needed, {}, {}, reason=reason)
        return needed

    def _require_started(self) -> None:
        """Raise unless the managers whose streams carry this configuration's calls run."""
        if self._origin is not None:
            self._origin.require_started()


def _node_id(node: Node) -> int:
    return node.id


def _by_id(config: Configuration) -> dict[int, Node]:
    if not isinstance(config, Configuration):
        raise TypeError(f"expected a Configuration, got {config!r}")
    return {node.id: node for node in config}


def _check_same(config: Configuration, theirs: Mapping[int, Node]) -> None:
    """No ID may name two different node handles (nodes of two unrelated managers)."""
    for node in config:
        other = theirs.get(node.id)
        if other is not None and other is not node:
            raise ValueError(
                f"node {node.id} is a different node in each configuration (they come from"
                " managers that each made their own): combine configurations whose nodes"
                " are the same handles"
            )


def _merge(config: Configuration, other: Configuration) -> dict[int, Node]:
    merged = _by_id(config)
    theirs = _by_id(other)
    _check_same(config, theirs)
    for node_id, node in theirs.items():
        merged.setdefault(node_id, node)
    return dict(sorted(merged.items()))


def ordered_configuration(
    nodes: Sequence[Node],
    telemetry: Telemetry,
    lookup: NodeLookup | None = None,
    origin: Origin | None = None,
) -> Configuration:
    """A configuration of ``nodes`` in the order given (a manager's, already ID-sorted),
    from ``origin``; the caller never changes ``nodes`` afterwards."""
    config = Configuration.__new__(Configuration)
    config._nodes = nodes
    config._telemetry = telemetry
    config._lookup = lookup
    config._origin = origin
    return config
