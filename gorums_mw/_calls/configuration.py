"""A configuration: an immutable sequence of nodes to call, and the algebra to reshape it."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import grpc

from gorums_mw._calls.config_calls import ConfigurationCalls
from gorums_mw._calls.node import Node
from gorums_mw._calls.origin import Origin
from gorums_mw._errors import QuorumCallError
from gorums_mw._telemetry import Telemetry

NodeLookup = Callable[[int], Node | None]
"""Finds the node with an ID among those its owner (a manager) knows."""


class Configuration(ConfigurationCalls):
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
