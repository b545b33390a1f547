"""Claims: who a caller says it is, in each dialect: the keys, the types, the parser,
the writer, and ``identify_peer``.

A claim travels in a call's metadata, in one of three dialects:

============  ==========================================  ===============================
class         metadata                                    sent by
============  ==========================================  ===============================
AddrClaim     ``gorums-addr: host:port``, maybe with      gorums-mw dialers (both keys),
              ``gorums-node-id: <id>`` (same node)        ``ClientIdentityInterceptor``
NodeIdClaim   ``gorums-node-id: <id>``                    Go Gorums dialers
ClientClaim   ``gorums-client: 1`` or                     client peers (no listening
              ``gorums-node-id: 0``                       address)
============  ==========================================  ===============================

``gorums-mw: 1`` beside a replica's claim says the sender keeps one stream
per pair. ``parse_claim`` checks syntax only (an address by
``parse_node_address``'s rules); whether a claim is true is for whoever
knows the connection: ``identify_peer`` here for an address alone, the
``Identifier`` for configured nodes. Both read a claim through the fields
every dialect has (``address``, ``node_id``, ``gorums_mw``), not its class.

A new dialect, say one key ``gorums-peer: <id>@<host:port>``, is:

1. its key, added to ``IDENTITY_KEYS`` (``parse_claim`` then collects it),
   and one frozen class with those three fields, added to ``Claim``;
2. one branch in the parser, ``_claim``, that builds it;
3. one branch in the writer, ``write_claim`` (mypy reports it missing).

``identify_peer`` and the ``Identifier`` then check it unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, assert_never

from gorums_mw._errors import ConfigurationError, InvalidAddressError, PeerAddressMismatchError
from gorums_mw._identity.address import NodeAddress, join_host_port, parse_node_address
from gorums_mw._identity.connection import CallContext, comes_from
from gorums_mw._identity.peer import EXTERNAL_ID, MAX_NODE_ID, check_node_id

GORUMS_ADDR_KEY: Final = "gorums-addr"
"""Metadata key carrying the caller's claimed listening address (``host:port``)."""

GORUMS_NODE_ID_KEY: Final = "gorums-node-id"
"""Metadata key carrying the caller's claimed node ID (upstream Go Gorums' form);
``0`` marks a client peer."""

GORUMS_CLIENT_KEY: Final = "gorums-client"
"""Metadata key a client peer (no listening address) sends on its NodeStream
to be given a client ID and be callable through ``client_config()``."""

GORUMS_MW_KEY: Final = "gorums-mw"
"""Metadata key gorums-mw replicas send when they dial: the sender keeps one
stream per pair (the one the lower ID dialed) and closes its own when it loses.
A replica without it (Go Gorums) keeps both streams, so ours is kept too.
A gorums-mw server also sends it in a stream's response headers."""

IDENTITY_KEYS: Final = frozenset(
    {GORUMS_ADDR_KEY, GORUMS_NODE_ID_KEY, GORUMS_CLIENT_KEY, GORUMS_MW_KEY}
)
"""The metadata keys that carry a claim."""

Metadata = tuple[tuple[str, str], ...]


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

    @property
    def address(self) -> None:
        """No address is claimed."""


@dataclass(frozen=True, slots=True)
class ClientClaim:
    """A client peer: no listening address, may be called back over its stream
    (``gorums-client``, or ``gorums-node-id: 0``)."""

    @property
    def address(self) -> None:
        """No address is claimed."""

    @property
    def node_id(self) -> int:
        """Always 0: a client is no configured node."""
        return EXTERNAL_ID

    @property
    def gorums_mw(self) -> bool:
        """Always False: the pair rule concerns replicas only."""
        return False


Claim = AddrClaim | NodeIdClaim | ClientClaim


def claimed_text(claim: Claim) -> str:
    """What ``claim`` claims, for errors and spans: the address, ``node <id>``,
    or ``""`` for a client peer."""
    if claim.address is not None:
        return claim.address.text
    return f"node {claim.node_id}" if claim.node_id else ""


def parse_claim(metadata: Iterable[tuple[str, str | bytes]]) -> Claim | None:
    """The claim in ``metadata``, or None if it carries none (an external caller).

    Raises:
        InvalidAddressError: an identity key is repeated or not text, an
            address or ID is malformed, or the keys contradict each other (an
            address with ``gorums-node-id: 0`` or ``gorums-client``).
    """
    entries: list[tuple[str, str | bytes]] | None = None
    for entry in metadata:
        if entry[0] in IDENTITY_KEYS:
            if entries is None:
                entries = [entry]
            else:
                entries.append(entry)
    return None if entries is None else _claim(tuple(entries))


@functools.lru_cache(maxsize=4096)
def _claim(entries: tuple[tuple[str, str | bytes], ...]) -> Claim | None:
    """The parser: one branch per dialect (cached, so equal metadata gives the same object)."""
    values: dict[str, str] = {}
    for key, value in entries:
        if not isinstance(value, str):
            raise InvalidAddressError(f"{key} must be text, got bytes")
        if key in values:
            raise InvalidAddressError(f"{key} sent more than once")
        values[key] = value
    addr = values.get(GORUMS_ADDR_KEY)
    node_id_text = values.get(GORUMS_NODE_ID_KEY)
    node_id = None if node_id_text is None else _parse_node_id(node_id_text)
    marked = GORUMS_MW_KEY in values
    if GORUMS_CLIENT_KEY in values or node_id == EXTERNAL_ID:
        if addr is not None:
            raise InvalidAddressError(
                f"{GORUMS_ADDR_KEY} {addr!r} sent by a client peer: a client has no"
                " listening address"
            )
        return _CLIENT
    if addr is not None:
        try:
            address = parse_node_address(addr)
        except ValueError as exc:
            raise InvalidAddressError(f"{GORUMS_ADDR_KEY}: {exc}") from None
        return AddrClaim(address, node_id, marked)
    if node_id is not None:
        return NodeIdClaim(node_id, marked)
    return None  # gorums-mw alone claims nothing


def _parse_node_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        raise InvalidAddressError(f"{GORUMS_NODE_ID_KEY} {text[:40]!r} is not a node ID")
    node_id = int(text)
    if node_id > MAX_NODE_ID:
        raise InvalidAddressError(f"{GORUMS_NODE_ID_KEY} {node_id} is outside 0..{MAX_NODE_ID}")
    return node_id


def write_claim(claim: Claim) -> Metadata:
    """The writer: the metadata entries that say ``claim`` (``parse_claim`` reads them back)."""
    mark: Metadata = ((GORUMS_MW_KEY, "1"),) if claim.gorums_mw else ()
    match claim:
        case AddrClaim(address, node_id):
            by_id: Metadata = () if node_id is None else ((GORUMS_NODE_ID_KEY, str(node_id)),)
            return ((GORUMS_ADDR_KEY, address.text), *mark, *by_id)
        case NodeIdClaim(node_id):
            return ((GORUMS_NODE_ID_KEY, str(node_id)), *mark)
        case ClientClaim():
            return ((GORUMS_CLIENT_KEY, "1"), (GORUMS_NODE_ID_KEY, "0"))
        case _:
            assert_never(claim)


def dialer_metadata(my_addr: str | None, my_id: int | None, client_peer: bool) -> Metadata:
    """What a gorums-mw dialer sends on each stream to identify itself.

    A replica claims its address, marked ``gorums-mw``, and its ID when
    given (Go Gorums servers read only the ID); a client peer claims to be
    one; a dialer with neither sends nothing (an external caller).

    Raises:
        ConfigurationError: ``my_addr`` or ``my_id`` is malformed, ``my_id``
            comes without ``my_addr``, or either comes with ``client_peer``.
    """
    if client_peer:
        if my_addr is not None or my_id is not None:
            raise ConfigurationError(
                "a client peer has no listening address or node ID: pass my_addr/my_id"
                " or client_peer, not both"
            )
        return write_claim(_CLIENT)
    if my_addr is None:
        if my_id is not None:
            raise ConfigurationError("my_id needs my_addr: a replica claims both")
        return ()
    try:
        address = parse_node_address(my_addr)
    except ValueError as exc:
        raise ConfigurationError(f"my_addr: {exc}") from exc
    node_id = None if my_id is None else check_node_id(my_id)
    return write_claim(AddrClaim(address, node_id, gorums_mw=True))


def identify_peer(context: CallContext) -> str:
    """Return the caller's validated claimed address.

    Reads the call's claim with the interceptor's parser and checks a
    ``gorums-addr`` against the connection: the claimed host must be the IP
    the connection comes from (a unix-socket caller: a loopback host). No
    name is resolved: the host must be an IP literal or ``localhost``
    (this host's loopback, 127.0.0.1 or ::1, from either of which it may come).

    Args:
        context: the call's ``grpc.aio.ServicerContext`` (or anything with
            ``peer()`` and ``invocation_metadata()``).

    Returns:
        The claimed address as ``normalize_addr`` writes it (``127.0.0.1:9001``,
        ``[::1]:9001``; ``localhost:9001`` is ``127.0.0.1:9001``), or ``""``
        when the caller sent no ``gorums-addr`` (an external caller, or one
        that claims only a node ID) or the context has no peer information
        (as Go Gorums' ``identifyPeer``).

    Raises:
        InvalidAddressError: the claim is malformed, repeated or
            contradictory, or its host is a name other than ``localhost``.
        PeerAddressMismatchError: the claimed IP is not the connection's IP.
    """
    claim = parse_claim(context.invocation_metadata() or ())
    address = None if claim is None else claim.address
    if address is None:
        return ""
    if address.needs_dns:
        raise InvalidAddressError(
            f"{GORUMS_ADDR_KEY} {address.text!r}: identify_peer resolves no names, so the"
            " host must be an IP literal or localhost (an InboundManager checks names)"
        )
    peer = context.peer()
    if not peer:
        return ""
    if not comes_from(peer, address.ips):
        raise PeerAddressMismatchError(address.text, peer)
    return address.text if address.ip is not None else join_host_port(address.ips[0], address.port)


_CLIENT = ClientClaim()
