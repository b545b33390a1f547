"""Parsing and normalizing ``host:port`` addresses (no gorums-mw imports).

Errors are plain ``ValueError`` with a message naming the bad value;
``gorums_mw`` translates them into ``InvalidAddressError``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_ADDR_LENGTH = 300
"""Longest accepted ``host:port`` (a 253-character name plus a port, with room)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True, eq=False)
class NodeAddress:
    """A parsed node address: an IP literal or a DNS name, and a port.

    Attributes:
        host: the canonical IP (no brackets) or the lower-cased name.
        port: the TCP port.
        ip: the IP, or None when ``host`` is a name.
        text: the canonical ``host:port`` (IPv6 in brackets).
    """

    host: str
    port: int
    ip: IPAddress | None
    text: str

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeAddress):
            return NotImplemented
        return self.text == other.text  # canonical: equal text is the same address

    def __hash__(self) -> int:
        return hash(self.text)  # a str's hash is cached; an ip's is computed each time

    @property
    def is_name(self) -> bool:
        """Whether the host is a DNS name (resolved later, never here)."""
        return self.ip is None


@functools.lru_cache(maxsize=4096)
def parse_node_address(addr: str) -> NodeAddress:
    """Parse a node address without resolving anything.

    IP literals are canonicalized (``[::FFFF:127.0.0.1]:1`` is ``127.0.0.1:1``);
    names are checked for DNS syntax and lower-cased.

    Raises:
        ValueError: malformed, a URL, or the unspecified address.
    """
    host, port = split_host_port(addr)
    try:
        ip = canonical_ip(host)
    except ValueError:
        name = host.lower().removesuffix(".")
        if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
            raise ValueError(
                f"address {addr!r}: {host!r} is neither an IP nor a DNS name"
            ) from None
        return NodeAddress(name, port, None, f"{name}:{port}")
    _refuse_unspecified(ip, addr)
    return NodeAddress(str(ip), port, ip, join_host_port(ip, port))


def _refuse_unspecified(ip: IPAddress, addr: str) -> None:
    if ip.is_unspecified:
        raise ValueError(
            f"address {addr!r}: {ip} is the unspecified address, which no peer can dial;"
            " name the IP this node is reached at"
        )


def split_host_port(addr: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6]:port`` into host and port.

    Raises:
        ValueError: with a message naming what is wrong.
    """
    if not isinstance(addr, str):
        raise ValueError(f"address must be a str, got {type(addr).__name__}")
    if not addr:
        raise ValueError("address is empty")
    if len(addr) > MAX_ADDR_LENGTH:
        raise ValueError(f"address is longer than {MAX_ADDR_LENGTH} characters")
    if not addr.isascii() or not addr.isprintable():
        raise ValueError(f"address {addr!r} has non-ASCII or control characters")
    if "://" in addr:
        raise ValueError(f"address {addr!r}: write host:port with no URL scheme")
    host, sep, port_text = addr.rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {addr!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise ValueError(f"address {addr!r}: brackets are only for IPv6 hosts")
    elif ":" in host:
        raise ValueError(f"address {addr!r}: write an IPv6 host in brackets, [::1]:port")
    if not host or any(c in host for c in "[]/ @"):
        raise ValueError(f"address {addr!r} has an invalid host")
    if not (port_text.isdigit() and len(port_text) <= 5 and 0 < int(port_text) < 65536):
        raise ValueError(f"address {addr!r}: port must be 1..65535")
    return host, int(port_text)


def join_host_port(ip: IPAddress, port: int) -> str:
    """The canonical text of an IP and port (IPv6 in brackets)."""
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def canonical_ip(text: str) -> IPAddress:
    """Parse an IP literal; an IPv4-mapped IPv6 address becomes IPv4.

    Raises:
        ValueError: ``text`` is not an IP literal.
    """
    ip = ipaddress.ip_address(text)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def normalize_addr(addr: str) -> str:
    """Normalize a node address so equal endpoints compare equal.

    IP literals are canonicalized (``[::FFFF:127.0.0.1]:1`` → ``127.0.0.1:1``);
    a host name is resolved once, preferring IPv4 (``localhost:9001`` →
    ``127.0.0.1:9001``). Use it where addresses are configured, never per call.

    Raises:
        ValueError: malformed, or a name that does not resolve.
    """
    host, port = split_host_port(addr)
    try:
        ip = canonical_ip(host)
    except ValueError:
        ip = _resolve(host, addr)
    _refuse_unspecified(ip, addr)
    return join_host_port(ip, port)


def resolved_ips(infos: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    """The IPs of ``getaddrinfo`` results, canonical (IPv6 zone IDs dropped)."""
    return [canonical_ip(str(info[4][0]).partition("%")[0]) for info in infos]


def _resolve(host: str, addr: str) -> IPAddress:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"address {addr!r}: cannot resolve {host!r}: {exc}") from exc
    ips = resolved_ips(infos)
    if not ips:
        raise ValueError(f"address {addr!r}: {host!r} has no addresses")
    return min(ips, key=lambda ip: ip.version)
