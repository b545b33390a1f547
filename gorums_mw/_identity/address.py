"""Node addresses: ``host:port`` syntax, host names, and what ``localhost`` means.

One parser, ``parse_node_address``, decides every address the library reads:
``with_nodes``, ``lookup_node_id``, claims (``gorums-addr``) and
``normalize_addr``. Its rules:

- The host is an IP literal (IPv6 in brackets; an IPv4-mapped IPv6 address
  is its IPv4 address) or a host name as RFC 1123 writes them: dot-separated
  labels of letters, digits and hyphens, 1-63 characters each, no hyphen
  first or last, 253 characters in all (one trailing dot, the DNS root, is
  dropped). Names are lower-cased.
- Underscores are allowed in labels, beyond RFC 1123, as Go's resolver
  (``net.isDomainName``, used by upstream Go Gorums) and the WHATWG URL
  parser allow them: Docker Compose and Active Directory names carry them,
  and earlier releases accepted them.
- A host whose last label is a number (all digits, or ``0x`` and hex
  digits: the WHATWG URL host parser's "ends in a number") is meant as an
  IPv4 address, and must be one written canonically (``127.0.0.1``).
  ``127.1``, ``0x7f000001``, ``0177.0.0.1``, ``127.000.000.001`` and
  ``2130706433`` are refused: resolvers read them as IPv4 in ways that
  differ, so no two parts of a system would agree what they name.
- ``localhost`` always means this host's loopback, 127.0.0.1 and ::1
  (RFC 6761 §6.3), and is never looked up: in ``with_nodes`` it is the same
  endpoint as ``127.0.0.1`` and ``[::1]`` on its port, ``lookup_node_id`` finds
  either form, a claim of it must come over loopback, and ``normalize_addr``
  writes it ``127.0.0.1``.
- No URL schemes, no unspecified address (``0.0.0.0``, ``::``), port 1..65535.

Errors are ``InvalidAddressError`` (a ``ValueError``) naming the bad value.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gorums_mw._errors import InvalidAddressError

MAX_ADDR_LENGTH = 300
"""Longest accepted ``host:port`` (a 253-character name plus a port, with room)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOCALHOST = "localhost"
"""The name that always means this host's loopback (RFC 6761), never looked up."""

LOOPBACK: tuple[IPAddress, ...] = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
"""What ``localhost`` means, IPv4 first (the one ``normalize_addr`` writes)."""

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_ENDS_IN_A_NUMBER = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NAME_RULE = (
    "a host name is dot-separated labels of letters, digits, hyphens and underscores,"
    " 1-63 characters each, not starting or ending with a hyphen, 253 characters in all"
)


@dataclass(frozen=True, slots=True, eq=False)
class NodeAddress:
    """A parsed node address: an IP literal or a host name, and a port.

    Attributes:
        host: the canonical IP (no brackets) or the lower-cased name.
        port: the TCP port.
        ip: the IP, or None when ``host`` is a name.
        text: the canonical ``host:port`` (IPv6 in brackets).
        ips: the IPs known without DNS: the literal's, ``localhost``'s
            loopback pair (IPv4 first), none for another name.
    """

    host: str
    port: int
    ip: IPAddress | None
    text: str
    ips: tuple[IPAddress, ...]

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
        """Whether the host is a name, not an IP literal (``localhost`` is one)."""
        return self.ip is None

    @property
    def needs_dns(self) -> bool:
        """Whether the host is a name whose IPs only DNS knows (not ``localhost``)."""
        return not self.ips


@functools.lru_cache(maxsize=4096)
def parse_node_address(addr: str) -> NodeAddress:
    """Parse a node address without resolving anything (rules: the module's docstring).

    IP literals are canonicalized (``[::FFFF:127.0.0.1]:1`` is ``127.0.0.1:1``);
    names are checked for host-name syntax and lower-cased.

    Raises:
        InvalidAddressError: malformed, a URL, or the unspecified address.
    """
    host, port = split_host_port(addr)
    ip = ip_of(host)
    if ip is None:
        name = _host_name(host, addr)
        ips = LOOPBACK if name == LOCALHOST else ()
        return NodeAddress(name, port, None, f"{name}:{port}", ips)
    if ip.is_unspecified:
        raise InvalidAddressError(
            f"address {addr!r}: {ip} is the unspecified address, which no peer can dial;"
            " name the IP this node is reached at"
        )
    return NodeAddress(str(ip), port, ip, join_host_port(ip, port), (ip,))


def _host_name(host: str, addr: str) -> str:
    name = host.lower().removesuffix(".")
    labels = name.split(".")
    if _ENDS_IN_A_NUMBER.fullmatch(labels[-1]):
        raise InvalidAddressError(
            f"address {addr!r}: {host!r} ends in a number, so it must be an IPv4 address"
            " written as four decimal numbers 0-255 without leading zeros, like 127.0.0.1"
        )
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidAddressError(
            f"address {addr!r}: {host!r} is neither an IP nor a host name ({_NAME_RULE})"
        )
    return name


def split_host_port(addr: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6]:port`` into host and port.

    Raises:
        InvalidAddressError: with a message naming what is wrong.
    """
    if not isinstance(addr, str):
        raise InvalidAddressError(f"address must be a str, got {type(addr).__name__}")
    if not addr:
        raise InvalidAddressError("address is empty")
    if len(addr) > MAX_ADDR_LENGTH:
        raise InvalidAddressError(f"address is longer than {MAX_ADDR_LENGTH} characters")
    if not addr.isascii() or not addr.isprintable():
        raise InvalidAddressError(f"address {addr!r} has non-ASCII or control characters")
    if "://" in addr:
        raise InvalidAddressError(f"address {addr!r}: write host:port with no URL scheme")
    host, sep, port_text = addr.rpartition(":")
    if not sep or not host:
        raise InvalidAddressError(f"address {addr!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise InvalidAddressError(f"address {addr!r}: brackets are only for IPv6 hosts")
    elif ":" in host:
        raise InvalidAddressError(f"address {addr!r}: write an IPv6 host in brackets, [::1]:port")
    if not host or any(c in host for c in "[]/ @"):
        raise InvalidAddressError(f"address {addr!r} has an invalid host")
    if not (port_text.isdigit() and len(port_text) <= 5 and 0 < int(port_text) < 65536):
        raise InvalidAddressError(f"address {addr!r}: port must be 1..65535")
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


@functools.lru_cache(maxsize=4096)
def ip_of(text: str) -> IPAddress | None:
    """``canonical_ip(text)``, or None if ``text`` is no IP literal; cached, so
    equal texts give the same object (compared by identity first, and fast)."""
    try:
        return canonical_ip(text)
    except ValueError:
        return None


def normalize_addr(addr: str) -> str:
    """Normalize a node address so equal endpoints compare equal.

    IP literals are canonicalized (``[::FFFF:127.0.0.1]:1`` → ``127.0.0.1:1``);
    ``localhost`` is ``127.0.0.1`` without a lookup (``localhost:9001`` →
    ``127.0.0.1:9001``); another host name is resolved once, preferring
    IPv4. Use it where addresses are configured, never per call. The host
    syntax is ``with_nodes``' (a host ending in a number must be a canonical
    IPv4 address: ``127.1`` is refused, not resolved).

    Raises:
        InvalidAddressError: malformed, or a name that does not resolve.
    """
    address = parse_node_address(addr)
    if address.needs_dns:
        ip = _resolve(address.host, addr)
        if ip.is_unspecified:
            raise InvalidAddressError(f"address {addr!r}: {address.host!r} resolves to {ip}")
        return join_host_port(ip, address.port)
    return join_host_port(address.ips[0], address.port)


def resolved_ips(infos: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    """The IPs of ``getaddrinfo`` results, canonical (IPv6 zone IDs dropped)."""
    return [canonical_ip(str(info[4][0]).partition("%")[0]) for info in infos]


def _resolve(host: str, addr: str) -> IPAddress:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidAddressError(f"address {addr!r}: cannot resolve {host!r}: {exc}") from exc
    ips = resolved_ips(infos)
    if not ips:
        raise InvalidAddressError(f"address {addr!r}: {host!r} has no addresses")
    return min(ips, key=lambda ip: ip.version)
