"""The configured nodes: ID ↔ address, and the IPs each node has now.

A node address is an IP literal or a host name. ``localhost`` is this
host's loopback, 127.0.0.1 and ::1, and never looked up (see ``address``).
Other names are never resolved on a call's path: their IPs live in a cache
that is refreshed in the background, when an entry is older than
``NameResolution.ttl`` and, at most once per
``NameResolution.min_interval`` per name, when a claim arrives from an IP
the cache lacks.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gorums_mw._identity.address import IPAddress, NodeAddress, parse_node_address, resolved_ips
from gorums_mw._settings import NameResolution

_log = logging.getLogger("gorums_mw")


@dataclass(slots=True)
class _Resolved:
    """What a name resolved to, and when."""

    ips: frozenset[IPAddress]
    at: float  # time.monotonic() of the resolution; -inf: never
    asked: float  # when a refresh was last started


class AddressBook:
    """ID ↔ address of the configured nodes, and each node's current IPs.

    Reads are plain dict lookups, safe from any thread; refreshes run on the
    event loop of the caller that asked for them (none without a loop).
    """

    __slots__ = (
        "_by_ip_port",
        "_by_text",
        "_nodes",
        "_resolution",
        "_resolved",
        "_tasks",
        "generation",
    )

    def __init__(self, nodes: Mapping[int, NodeAddress], resolution: NameResolution) -> None:
        self._nodes = dict(nodes)
        self._resolution = resolution
        self._by_text = {address.text: node_id for node_id, address in self._nodes.items()}
        self._resolved: dict[int, _Resolved] = {
            node_id: _Resolved(frozenset(), float("-inf"), float("-inf"))
            for node_id, address in self._nodes.items()
            if address.needs_dns
        }
        self._by_ip_port: dict[tuple[IPAddress, int], int] = {}
        for node_id, address in self._nodes.items():
            for ip in address.ips:
                self._by_ip_port.setdefault((ip, address.port), node_id)
        self._tasks: set[asyncio.Task[None]] = set()
        self.generation = 0
        """Counts the changes of names' IPs: what was read before a change may be stale."""

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    @property
    def ttl(self) -> float:
        """Seconds a name's cached IPs are used before they are resolved again."""
        return self._resolution.ttl

    @property
    def has_names(self) -> bool:
        """Whether any node is addressed by a name to resolve (not ``localhost``)."""
        return bool(self._resolved)

    def address(self, node_id: int) -> NodeAddress:
        """The configured address of ``node_id`` (``KeyError`` if unknown)."""
        return self._nodes[node_id]

    def node_of(self, address: str | NodeAddress) -> int | None:
        """The node configured at ``address`` (its name or IP and port), or None.

        An ``IP:port`` also finds a node configured by name whose cached IPs
        include that IP. ``localhost`` is 127.0.0.1 and ::1: ``127.0.0.1:9001``
        finds a node configured as ``localhost:9001``, and ``localhost:9001``
        one configured as ``127.0.0.1:9001`` (or, failing that, ``[::1]:9001``).
        """
        if isinstance(address, str):
            try:
                address = parse_node_address(address)
            except ValueError:
                return None
        node_id = self._by_text.get(address.text)
        if node_id is None:
            for ip in address.ips:
                node_id = self._by_ip_port.get((ip, address.port))
                if node_id is not None:
                    break
        return node_id

    def ips_of(self, node_id: int) -> Collection[IPAddress]:
        """The IPs ``node_id`` has now: its literal IP, ``localhost``'s loopback
        pair, or the name's cached IPs.

        A stale cache entry is returned as is and refreshed in the background.
        """
        address = self._nodes[node_id]
        if address.ips:
            return address.ips
        resolved = self._resolved[node_id]
        if time.monotonic() - resolved.at > self._resolution.ttl:
            self.refresh(node_id)
        return resolved.ips

    def refresh(self, node_id: int) -> None:
        """Resolve ``node_id``'s name again, in the background, if not done too recently.

        Called when a claim for the node comes from an IP the cache lacks:
        that claim is refused, and the node's dialer, retrying, is accepted
        once the refresh has the new IP.
        """
        resolved = self._resolved.get(node_id)
        now = time.monotonic()
        if resolved is None or now - resolved.asked < self._resolution.min_interval:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        resolved.asked = now
        task = loop.create_task(self._resolve(node_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resolve_all(self) -> None:
        """Resolve every name now (names that do not resolve yet are retried later)."""
        await asyncio.gather(*(self._resolve(node_id) for node_id in self._resolved))

    def close(self) -> None:
        """Cancel refreshes in progress."""
        for task in self._tasks:
            task.cancel()

    async def _resolve(self, node_id: int) -> None:
        address = self._nodes[node_id]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                address.host, None, type=socket.SOCK_STREAM
            )
            ips = frozenset(resolved_ips(infos))
        except (OSError, UnicodeError, ValueError) as exc:
            _log.debug("node %d: cannot resolve %s yet: %s", node_id, address.host, exc)
            return
        old = self._resolved[node_id]
        for ip in old.ips - ips:
            if self._by_ip_port.get((ip, address.port)) == node_id:
                del self._by_ip_port[(ip, address.port)]
        for ip in ips:
            self._by_ip_port.setdefault((ip, address.port), node_id)
        now = time.monotonic()
        self._resolved[node_id] = _Resolved(ips, now, max(old.asked, now))
        self.generation += 1
