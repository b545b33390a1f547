"""Peer identity: the ``gorums-addr`` claim and its check against the connection.

A replica that dials another sends, once per call, the address it listens on
in the metadata key ``gorums-addr``. The server accepts the claim only when
the claimed host is the IP the connection really comes from. No name is ever
resolved here: a claimed host must be an IP literal.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from typing import Protocol, runtime_checkable
from urllib.parse import unquote

from gorums_mw._errors import InvalidAddressError, PeerAddressMismatchError
from gorums_mw._identity import address as _address
from gorums_mw._identity.address import IPAddress
from gorums_mw._wire import GORUMS_ADDR_KEY


@runtime_checkable
class CallContext(Protocol):
    """What identification reads from a call: grpc's peer string and metadata."""

    def peer(self) -> str:
        """grpc's peer string for the connection."""
        ...

    def invocation_metadata(self) -> Iterable[tuple[str, str | bytes]] | None:
        """The call's metadata."""
        ...


def identify_peer(context: CallContext) -> str:
    """Return the caller's validated claimed address.

    Args:
        context: the call's ``grpc.aio.ServicerContext`` (or anything with
            ``peer()`` and ``invocation_metadata()``).

    Returns:
        The claimed address, normalized (``127.0.0.1:9001``, ``[::1]:9001``),
        or ``""`` when the caller sent no ``gorums-addr`` or the context has
        no peer information (as Go Gorums' ``identifyPeer``: an external caller).

    Raises:
        InvalidAddressError: ``gorums-addr`` is malformed or repeated.
        PeerAddressMismatchError: the claimed IP is not the connection's IP.
    """
    claimed = claimed_address(context.invocation_metadata() or ())
    if claimed is None:
        return ""
    peer = context.peer()
    if not peer:
        _parse_claim(claimed)  # still refuse a malformed claim
        return ""
    return validate_claim(peer, claimed)


def claimed_address(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The single ``gorums-addr`` value in ``metadata``, or None if absent.

    Raises:
        InvalidAddressError: the key is repeated or its value is not text.
    """
    found: str | bytes | None = None
    for key, value in metadata:
        if key == GORUMS_ADDR_KEY:
            if found is not None:
                raise InvalidAddressError(f"{GORUMS_ADDR_KEY} sent more than once")
            found = value
    if found is None:
        return None
    if not isinstance(found, str):
        raise InvalidAddressError(f"{GORUMS_ADDR_KEY} must be text, got bytes")
    return found


def validate_claim(peer: str, claimed: str) -> str:
    """Check a claimed address against grpc's peer string for the connection.

    Returns:
        The normalized claimed address.

    Raises:
        InvalidAddressError: ``claimed`` is not an ``ip:port`` literal.
        PeerAddressMismatchError: the IPs differ, or a unix-socket caller
            claims a non-loopback host.
    """
    claimed_ip, normalized = _parse_claim(claimed)
    if not comes_from(peer, (claimed_ip,)):
        raise PeerAddressMismatchError(normalized, peer)
    return normalized


def comes_from(peer: str, ips: Collection[IPAddress]) -> bool:
    """Whether grpc's peer string names a connection from one of ``ips`` (a
    unix-socket connection comes from this host: from any loopback IP)."""
    if peer.startswith("unix"):
        return any(ip.is_loopback for ip in ips)
    return peer_ip(peer) in ips


def certified_names(context: object) -> tuple[set[IPAddress], set[str]]:
    """The IPs and DNS names a call's verified TLS client certificate names.

    grpc lists them in the auth context: IP SANs under ``peer_ip``, DNS SANs
    under ``peer_dns`` (and ``x509_subject_alternative_name``). Empty without
    a client certificate. No name is resolved.
    """
    auth_context = getattr(context, "auth_context", None)
    auth = auth_context() if callable(auth_context) else {}
    ips = {ip for value in auth.get("peer_ip", ()) if (ip := _ip_of(_text(value))) is not None}
    names = {
        _text(value).lower()
        for key in ("peer_dns", "x509_subject_alternative_name")
        for value in auth.get(key, ())
    }
    return ips, names - {str(ip) for ip in ips}


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


def normalize_addr(addr: str) -> str:
    """Normalize a node address so equal endpoints compare equal.

    IP literals are canonicalized (``[::FFFF:127.0.0.1]:1`` → ``127.0.0.1:1``);
    a host name is resolved once, preferring IPv4 (``localhost:9001`` →
    ``127.0.0.1:9001``). Use it where addresses are configured, never per call.

    Raises:
        InvalidAddressError: malformed, or a name that does not resolve.
    """
    try:
        return _address.normalize_addr(addr)
    except ValueError as exc:
        raise InvalidAddressError(str(exc)) from exc


@functools.lru_cache(maxsize=4096)
def _parse_claim(claimed: str) -> tuple[IPAddress, str]:
    try:
        host, port = _address.split_host_port(claimed)
    except ValueError as exc:
        raise InvalidAddressError(f"{GORUMS_ADDR_KEY}: {exc}") from None
    try:
        ip = _address.canonical_ip(host)
    except ValueError:
        raise InvalidAddressError(
            f"{GORUMS_ADDR_KEY} {claimed!r}: host must be an IP literal, not a name"
        ) from None
    return ip, _address.join_host_port(ip, port)


@functools.lru_cache(maxsize=4096)
def _ip_of(host: str) -> IPAddress | None:
    try:
        return _address.canonical_ip(host)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def peer_ip(peer: str) -> IPAddress | None:
    """The IP in a grpc peer string (``ipv4:a.b.c.d:p``, ``ipv6:%5B..%5D:p``)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    host = rest.rpartition(":")[0]
    if "%" in host:
        host = unquote(host)
    return _ip_of(host.removeprefix("[").removesuffix("]"))
