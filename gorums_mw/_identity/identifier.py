"""Identification: which configured node a claim names, and whether the connection proves it.

Every dialect is checked the same way, through the fields every claim has
(``address``, ``node_id``): a claimed IP literal, or ``localhost``, must be
the connection's IP (for ``localhost``: 127.0.0.1 or ::1); otherwise the
connection's IP must be one of the IPs of the node the claim names
(``gorums-addr``: the node at that address; ``gorums-node-id``: the node
with that ID). Upstream Go Gorums trusts ``gorums-node-id``; gorums-mw does
not. A caller that names no configured node is an external client (ID 0).
No name is resolved here: names' IPs come from the ``AddressBook`` cache.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from gorums_mw._errors import InvalidAddressError, PeerAddressMismatchError, PeerCertificateError
from gorums_mw._identity.address import IPAddress, NodeAddress
from gorums_mw._identity.address_book import AddressBook
from gorums_mw._identity.claims import Claim, claimed_text
from gorums_mw._identity.connection import certified_names, comes_from, peer_ip
from gorums_mw._identity.peer import EXTERNAL_ID, Peer

_NEVER = float("inf")
_MAX_VERDICTS = 4096
"""Connections whose accepted claim is remembered; the memory is emptied when full."""


class Identifier:
    """Turns a claim and a connection into a ``Peer``, or refuses it.

    The claim a connection (grpc's peer string) made and had accepted is
    remembered, so the calls after a connection's first cost one dict
    lookup. The memory is emptied whenever a name's IPs change; an entry
    lasts at most a name's TTL when nodes have names (so the names'
    refreshes go on as before); nothing is remembered when a certificate
    must vouch for the caller (a port reused by another process may hold
    another one).
    """

    __slots__ = ("_book", "_generation", "_require_certificate", "_verdicts")

    def __init__(self, book: AddressBook, *, require_certificate: bool) -> None:
        self._book = book
        self._require_certificate = require_certificate
        self._verdicts: dict[str, tuple[Claim, Peer, float]] = {}
        self._generation = book.generation

    def identify(self, peer_string: str, claim: Claim, context: object) -> Peer:
        """The caller a verified ``claim`` makes of this connection (see ``verify``),
        remembered for the connection."""
        remembered = self._verdicts.get(peer_string)
        if (
            remembered is not None
            and remembered[0] is claim  # claims are parsed once per distinct metadata
            and self._generation == self._book.generation
            and (remembered[2] == _NEVER or time.monotonic() < remembered[2])
        ):
            return remembered[1]
        peer = self.verify(peer_string, claim, context)
        if not self._require_certificate:
            self._remember(peer_string, claim, peer)
        return peer

    def _remember(self, peer_string: str, claim: Claim, peer: Peer) -> None:
        if self._generation != self._book.generation or len(self._verdicts) >= _MAX_VERDICTS:
            self._verdicts.clear()
            self._generation = self._book.generation
        expires = time.monotonic() + self._book.ttl if self._book.has_names else _NEVER
        self._verdicts[peer_string] = (claim, peer, expires)

    def verify(self, peer_string: str, claim: Claim, context: object) -> Peer:
        """The caller a verified ``claim`` makes of this connection.

        Args:
            peer_string: grpc's peer string for the connection (``""``: none
                known, an external caller as in Go Gorums' ``identifyPeer``).
            claim: what the caller claims.
            context: the call's context, for its TLS auth context.

        Returns:
            A configured node, or an external caller (ID 0) when the claim
            names no configured node (or is a client peer's).

        Raises:
            InvalidAddressError: ``gorums-addr`` and ``gorums-node-id`` name
                different nodes.
            PeerAddressMismatchError: the connection's IP is not the node's.
            PeerCertificateError: certificates are required and the caller's
                does not vouch for the node.
        """
        if claim.node_id == EXTERNAL_ID or not peer_string:
            return Peer(EXTERNAL_ID, "", peer_string)
        claimed = claimed_text(claim)
        node_id = self._node_of(claim)
        address = claim.address
        fixed_ips = () if address is None else address.ips  # an IP literal, or localhost
        if fixed_ips:
            self._check_ips(peer_string, fixed_ips, claimed)
        if node_id is None:
            return Peer(EXTERNAL_ID, "" if address is None else address.text, peer_string)
        if not fixed_ips:
            self._check_node_ips(peer_string, node_id, claimed)
        configured = self._book.address(node_id)
        if self._require_certificate:
            self._check_certificate(context, peer_string, configured, claimed)
        return Peer(node_id, configured.text, peer_string)

    def _node_of(self, claim: Claim) -> int | None:
        """The configured node ``claim`` names; an address and an ID, when both
        are sent, must name the same one."""
        by_id = claim.node_id if claim.node_id in self._book else None
        if claim.address is None:
            return by_id
        node_id = self._book.node_of(claim.address)
        if claim.node_id is not None and claim.node_id != node_id:
            if node_id is None and by_id is None:
                return None  # neither names a configured node: an external caller
            named = "no configured node" if node_id is None else f"node {node_id}"
            raise InvalidAddressError(
                f"gorums-addr {claim.address.text!r} names {named}, but gorums-node-id"
                f" names node {claim.node_id}"
            )
        return node_id

    def _check_ips(self, peer_string: str, ips: Collection[IPAddress], claimed: str) -> None:
        """The connection must come from one of ``ips`` (a unix socket: from loopback)."""
        if not comes_from(peer_string, ips):
            raise PeerAddressMismatchError(claimed, peer_string)

    def _check_node_ips(self, peer_string: str, node_id: int, claimed: str) -> None:
        """The connection must come from one of the node's current IPs."""
        if comes_from(peer_string, self._book.ips_of(node_id)):
            return
        self._book.refresh(node_id)  # the node may have moved: the peer's retry may pass
        raise PeerAddressMismatchError(claimed, peer_string)

    def _check_certificate(
        self, context: object, peer_string: str, configured: NodeAddress, claimed: str
    ) -> None:
        """The client certificate must name the node: its IP, or its configured DNS name."""
        ips, names = certified_names(context)
        connection_ip = peer_ip(peer_string)
        if configured.ip is not None:
            if configured.ip in ips:
                return
        elif configured.host in names or (connection_ip is not None and connection_ip in ips):
            return
        certified = [str(ip) for ip in sorted(ips, key=str)] + sorted(names)
        raise PeerCertificateError(claimed, certified)
