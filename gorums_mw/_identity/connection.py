"""The connection's side of identity: grpc's peer string and the TLS auth context.

A claim (``claims``) says who a caller is; this module says where the
connection really comes from: its IP, or this host for a unix socket, and
the IPs and names its verified client certificate lists. Nothing is resolved.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from typing import Protocol, runtime_checkable
from urllib.parse import unquote

from gorums_mw._identity.address import IPAddress, ip_of


@runtime_checkable
class CallContext(Protocol):
    """What identification reads from a call: grpc's peer string and metadata."""

    def peer(self) -> str:
        """grpc's peer string for the connection."""
        ...

    def invocation_metadata(self) -> Iterable[tuple[str, str | bytes]] | None:
        """The call's metadata."""
        ...


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
    ips = {ip for value in auth.get("peer_ip", ()) if (ip := ip_of(_text(value))) is not None}
    names = {
        _text(value).lower()
        for key in ("peer_dns", "x509_subject_alternative_name")
        for value in auth.get(key, ())
    }
    return ips, names - {str(ip) for ip in ips}


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


@functools.lru_cache(maxsize=4096)
def peer_ip(peer: str) -> IPAddress | None:
    """The IP in a grpc peer string (``ipv4:a.b.c.d:p``, ``ipv6:%5B..%5D:p``)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    host = rest.rpartition(":")[0]
    if "%" in host:
        host = unquote(host)
    return ip_of(host.removeprefix("[").removesuffix("]"))
