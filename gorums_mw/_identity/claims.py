"""What a caller claims to be, parsed from its metadata in one place.

Three keys carry a claim: ``gorums-addr`` (the address a replica listens
on; gorums-mw's form), ``gorums-node-id`` (a replica's ID; upstream Go
Gorums' form, ``0`` for a client peer) and ``gorums-client`` (a client peer,
gorums-mw's form). ``gorums-mw`` marks a gorums-mw replica, which keeps one
stream per pair. Parsing checks syntax only; whether a claim is true is
for the identifier, which knows the configured nodes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from gorums_mw._errors import InvalidAddressError
from gorums_mw._identity.address import NodeAddress, parse_node_address
from gorums_mw._identity.peer import MAX_NODE_ID
from gorums_mw._wire import GORUMS_ADDR_KEY, GORUMS_CLIENT_KEY, GORUMS_MW_KEY, GORUMS_NODE_ID_KEY

IDENTITY_KEYS = frozenset({GORUMS_ADDR_KEY, GORUMS_NODE_ID_KEY, GORUMS_CLIENT_KEY, GORUMS_MW_KEY})
"""The metadata keys that carry a claim."""


@dataclass(frozen=True, slots=True)
class AddrClaim:
    """A replica's claimed listening address (``gorums-addr``), maybe with its ID.

    Attributes:
        address: the claimed address, parsed: an IP literal (canonical) or a
            host name (lower-cased), with a port.
        node_id: the ID also claimed in ``gorums-node-id``, if any; it must
            name the same node.
        gorums_mw: the caller sent ``gorums-mw``: it keeps one stream per pair.
    """

    address: NodeAddress
    node_id: int | None = None
    gorums_mw: bool = False


@dataclass(frozen=True, slots=True)
class NodeIdClaim:
    """A replica's claimed node ID alone (``gorums-node-id``, as Go Gorums sends it).

    Attributes:
        node_id: the claimed ID.
        gorums_mw: the caller sent ``gorums-mw``: it keeps one stream per pair.
    """

    node_id: int
    gorums_mw: bool = False


@dataclass(frozen=True, slots=True)
class ClientClaim:
    """A client peer: no listening address, may be called back over its stream
    (``gorums-client``, or ``gorums-node-id: 0``)."""


Claim = AddrClaim | NodeIdClaim | ClientClaim


def claimed_text(claim: Claim) -> str:
    """What ``claim`` claims, for errors and spans: the address, ``node <id>``,
    or ``""`` for a client peer."""
    if isinstance(claim, AddrClaim):
        return claim.address.text
    if isinstance(claim, ClientClaim):
        return ""
    return f"node {claim.node_id}"


def parse_claim(metadata: Iterable[tuple[str, str | bytes]]) -> Claim | None:
    """The claim in ``metadata``, or None if it carries none (an external caller).

    Raises:
        InvalidAddressError: a key is repeated or not text, an address or ID
            is malformed, or the keys contradict each other (an address with
            ``gorums-node-id: 0`` or ``gorums-client``).
    """
    addr: str | None = None
    node_id: str | None = None
    client = False
    marked = False
    for key, value in metadata:
        if key not in IDENTITY_KEYS:
            continue
        if key == GORUMS_CLIENT_KEY:
            client = True
            continue
        if key == GORUMS_MW_KEY:
            marked = True
            continue
        if not isinstance(value, str):
            raise InvalidAddressError(f"{key} must be text, got bytes")
        if key == GORUMS_ADDR_KEY:
            if addr is not None:
                raise InvalidAddressError(f"{GORUMS_ADDR_KEY} sent more than once")
            addr = value
        else:
            if node_id is not None:
                raise InvalidAddressError(f"{GORUMS_NODE_ID_KEY} sent more than once")
            node_id = value
    if addr is None and node_id is None and not client:
        return None
    return _claim(addr, node_id, client, marked)


@functools.lru_cache(maxsize=4096)
def _claim(addr: str | None, node_id_text: str | None, client: bool, marked: bool) -> Claim | None:
    node_id = None if node_id_text is None else _parse_node_id(node_id_text)
    if addr is None:
        if client or node_id == 0:
            return _CLIENT
        return None if node_id is None else NodeIdClaim(node_id, marked)
    if client or node_id == 0:
        raise InvalidAddressError(
            f"{GORUMS_ADDR_KEY} {addr!r} sent by a client peer: a client has no listening address"
        )
    try:
        address = parse_node_address(addr)
    except ValueError as exc:
        raise InvalidAddressError(f"{GORUMS_ADDR_KEY}: {exc}") from None
    return AddrClaim(address, node_id, marked)


def _parse_node_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        raise InvalidAddressError(f"{GORUMS_NODE_ID_KEY} {text[:40]!r} is not a node ID")
    node_id = int(text)
    if node_id > MAX_NODE_ID:
        raise InvalidAddressError(f"{GORUMS_NODE_ID_KEY} {node_id} is outside 0..{MAX_NODE_ID}")
    return node_id


_CLIENT = ClientClaim()
