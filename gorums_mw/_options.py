"""Node options: the seed's ``WithNodeMap`` / ``WithNodeList`` as typed values.

``with_nodes`` works for dialed configurations and for an ``InboundManager``;
``with_node_list`` only for dialed configurations. The types say so, so
mypy rejects ``InboundManager(1, with_node_list([...]))``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gorums_mw._errors import ConfigurationError
from gorums_mw._identity.address import IPAddress, parse_node_address
from gorums_mw._identity.peer import check_node_id


@dataclass(frozen=True, slots=True)
class NodeListOption:
    """Nodes to dial, by ID. Built by ``with_nodes`` or ``with_node_list``.

    Attributes:
        nodes: node ID → address, in ID order: a canonical IP literal or a
            lower-cased DNS name, with a port.
    """

    nodes: Mapping[int, str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.nodes)!r})"


@dataclass(frozen=True, slots=True, repr=False)
class InboundNodeOption(NodeListOption):
    """Known nodes with fixed IDs: usable to dial and by an ``InboundManager``.

    Built by ``with_nodes``.
    """


def with_nodes(nodes: Mapping[int, str]) -> InboundNodeOption:
    """Name each node by an explicit ID.

    Args:
        nodes: node ID (1..2**32-1) → ``host:port``. The host is an IP
            literal (canonicalized: ``[::ffff:127.0.0.1]:1`` is
            ``127.0.0.1:1``) or a host name: RFC 1123 labels (letters,
            digits, hyphens; underscores too, as Go's resolver allows),
            kept, lower-cased; nothing is resolved here: grpc resolves it
            to dial, and a server keeps a cache of each name's IPs to check
            claims, see ``NameResolution``. A host ending in a number must
            be a canonical IPv4 address (``127.1`` and ``0x7f000001`` are
            refused). ``localhost`` is kept too and always means this
            host's loopback, 127.0.0.1 and ::1, never looked up.

    Returns:
        An option usable to dial a configuration and by an ``InboundManager``.

    Raises:
        ConfigurationError: an ID is not a positive 32-bit integer (0 is
            reserved for external clients), an address is malformed, or two
            IDs share an address (``localhost:9001`` is the address of
            ``127.0.0.1:9001`` and of ``[::1]:9001``).
    """
    if not isinstance(nodes, Mapping):
        raise ConfigurationError(f"with_nodes takes a mapping of ID to address, got {nodes!r}")
    if not nodes:
        raise ConfigurationError("with_nodes needs at least one node")
    return InboundNodeOption(_validated(nodes.items()))


def with_node_list(addrs: Iterable[str]) -> NodeListOption:
    """Name nodes by address only; IDs 1, 2, … are assigned in list order.

    Only for dialing: an ``InboundManager`` needs IDs that every replica
    agrees on, so it refuses this option.

    Raises:
        ConfigurationError: an address is malformed or repeated.
    """
    if isinstance(addrs, str):
        raise ConfigurationError("with_node_list takes a list of addresses, not one string")
    addr_list = list(addrs)
    if not addr_list:
        raise ConfigurationError("with_node_list needs at least one address")
    return NodeListOption(_validated(enumerate(addr_list, start=1)))


def _validated(items: Iterable[tuple[object, object]]) -> dict[int, str]:
    by_id: dict[int, str] = {}
    id_of: dict[str | tuple[IPAddress, int], int] = {}  # by text, and by each IP known without DNS
    for node_id, addr in sorted(items, key=lambda item: check_node_id(item[0])):
        if not isinstance(addr, str):
            raise ConfigurationError(f"node {node_id}: address must be a str, got {addr!r}")
        try:
            address = parse_node_address(addr)
        except ValueError as exc:
            raise ConfigurationError(f"node {node_id}: {exc}") from exc
        endpoints: list[str | tuple[IPAddress, int]] = [address.text]
        endpoints += [(ip, address.port) for ip in address.ips]
        for endpoint in endpoints:
            if endpoint in id_of:
                other = by_id[id_of[endpoint]]
                same = "" if other == address.text else f" ({other}: {_LOCALHOST_IS})"
                raise ConfigurationError(
                    f"node {node_id}: address {addr!r} ({address.text}) is already node"
                    f" {id_of[endpoint]}{same}"
                )
        for endpoint in endpoints:
            id_of[endpoint] = check_node_id(node_id)
        by_id[check_node_id(node_id)] = address.text
    return by_id


_LOCALHOST_IS = "localhost always means this host's loopback, 127.0.0.1 and ::1"
