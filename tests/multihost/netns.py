"""Hosts for tests: Linux network namespaces joined by a bridge, with their own /etc/hosts.

A ``Network`` of N hosts is N+1 namespaces made for one test: a *switch*
namespace holding a bridge, and one namespace per host, each wired to the
bridge by a veth pair (``eth0`` in the host, ``pN`` on the switch). Each host
gets an address in a private /24 (``10.213.X.0/24``, X drawn per network) and
its loopback is up. Nothing in the root namespace changes: every link lives in
one of the namespaces made here, and ``ip netns add`` itself only adds a file
under /run/netns.

Names are resolved per host from ``/etc/netns/NS/hosts``, which
``ip netns exec`` bind-mounts over /etc/hosts for the processes it starts.
The file is rewritten *in place* (same inode) by ``set_names``, so a process
that is already running sees a name move; replacing the file (a rename) would
leave it reading the old one. Each host also gets a resolv.conf that points at
its own loopback, so a name that is not in its hosts file fails at once and no
DNS query leaves the namespace.

Faults are made inside the hosts, never on the bridge: ``block`` adds a route
in one host that drops (``blackhole``: silently, the hard case for timeouts)
or refuses (``prohibit``/``unreachable``: at once) its packets to another
host, so a partition is a set of such routes and a one-way cut is one of
them; ``set_link`` takes a host's ``eth0`` down (off the bridge) or up;
``heal`` undoes every fault made so far. This kernel has no ``netem``, so
delay and loss rates are not offered.

Namespace names are ``<RUN_PREFIX><token>-sw`` and ``...-hN``: ``RUN_PREFIX``
is drawn once per test process and the token once per network, so parallel
runs never touch each other's namespaces. ``aclose()`` (``async with`` calls
it) kills the processes started with ``spawn``, deletes the namespaces and the
/etc/netns directories, and always runs to the end; ``sweep`` removes
whatever one run left (the test session calls it last).

Example::

    async with Network(3) as net:
        net.publish({"host1.test": net.hosts[0].ip})
        proc = await net.spawn(net.hosts[0], sys.executable, "-m", "some.module")
        await net.partition([net.hosts[2]], net.hosts[:2])  # host 3 alone, both ways
        await net.heal()
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

RUN_PREFIX = f"gmw{secrets.token_hex(2)}-"
"""Prefix of every namespace this test process makes (``ip netns list`` shows them)."""

NETNS_ETC = Path("/etc/netns")
SUBNET_BASE = "10.213"
DEVICE = "eth0"
IP_TIMEOUT = 10.0
"""Seconds any one ``ip`` command may take."""
KILL_TIMEOUT = 5.0
"""Seconds a killed child may take to be reaped."""

Route = Literal["blackhole", "prohibit", "unreachable"]
"""How blocked packets fail: dropped silently, or refused at once (EACCES, EHOSTUNREACH)."""

_BASE_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
_RESOLV_CONF = (
    "# gorums-mw test host: names come from /etc/hosts; no DNS query leaves the host\n"
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
)


_DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--") if shutil.which("setpriv") else ()
"""A prefix that makes a child get SIGKILL when its parent dies (``ip netns exec`` and
``setpriv`` exec, so the child is still the process ``spawn`` made)."""


class NetnsError(RuntimeError):
    """An ``ip`` command failed; the message has its command line and stderr."""


@dataclass
class Host:
    """One host of a ``Network``: a namespace with one address on the bridge."""

    index: int
    """1-based position in ``Network.hosts``."""
    netns: str
    """The namespace name (for ``ip netns exec``)."""
    ip: str
    """The host's current IPv4 address (``move`` changes it)."""

    @property
    def hosts_file(self) -> Path:
        """The file ``ip netns exec`` mounts over /etc/hosts in this namespace."""
        return NETNS_ETC / self.netns / "hosts"


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None if they can.

    Tries the real thing (``ip netns add`` and ``del`` of a probe namespace),
    since being root is not enough inside some containers.
    """
    if os.geteuid() != 0:
        return "network namespaces need root"
    ip = shutil.which("ip")
    if ip is None:
        return "network namespaces need iproute2's ip command"
    probe = f"{RUN_PREFIX}probe-{secrets.token_hex(2)}"
    try:
        added = subprocess.run(
            [ip, "netns", "add", probe], capture_output=True, text=True, timeout=IP_TIMEOUT
        )
        if added.returncode != 0:
            return f"ip netns add failed: {added.stderr.strip()}"
        inside = subprocess.run(
            [ip, "netns", "exec", probe, "true"], capture_output=True, text=True, timeout=IP_TIMEOUT
        )
        if inside.returncode != 0:
            return f"ip netns exec failed: {inside.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ip netns failed: {exc}"
    finally:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run([ip, "netns", "del", probe], capture_output=True, timeout=IP_TIMEOUT)
    return None


def list_namespaces(prefix: str = RUN_PREFIX) -> list[str]:
    """Names of the namespaces ``ip netns list`` shows that start with ``prefix``."""
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=IP_TIMEOUT, check=True
    )
    names = (line.split()[0] for line in listed.stdout.splitlines() if line.strip())
    return sorted(name for name in names if name.startswith(prefix))


_made_etc = False
"""Whether this process created /etc/netns (``sweep`` removes it again when empty)."""


def sweep(prefix: str = RUN_PREFIX) -> list[str]:
    """Delete every namespace (and /etc/netns directory) named ``prefix...``; return them."""
    found = list_namespaces(prefix)
    for name in found:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=IP_TIMEOUT)
    if NETNS_ETC.is_dir():
        for entry in NETNS_ETC.iterdir():
            if entry.name.startswith(prefix):
                shutil.rmtree(entry, ignore_errors=True)
                found.append(str(entry))
        if _made_etc:
            with contextlib.suppress(OSError):  # not empty: another run is using it
                NETNS_ETC.rmdir()
    return found


class Network:
    """``count`` hosts on one bridge, each in its own network namespace.

    Use it as ``async with Network(3) as net``; the hosts are ``net.hosts``.
    Not safe to share between event loops.
    """

    def __init__(self, count: int) -> None:
        """Choose names and addresses for ``count`` hosts (nothing is made yet).

        Raises:
            ValueError: ``count`` is not 1..200.
        """
        if not 1 <= count <= 200:
            raise ValueError(f"count must be 1..200, got {count}")
        self.name = f"{RUN_PREFIX}{secrets.token_hex(3)}"
        self.subnet = ipaddress.IPv4Network(f"{SUBNET_BASE}.{secrets.randbelow(256)}.0/24")
        self.switch = f"{self.name}-sw"
        self.hosts = [
            Host(i, f"{self.name}-h{i}", str(self.subnet.network_address + 10 + i))
            for i in range(1, count + 1)
        ]
        self._made: list[str] = []
        self._children: list[asyncio.subprocess.Process] = []
        self._next_ip = 100
        self._blocks: set[tuple[str, str, Route]] = set()
        """Routes ``block`` added, as (namespace, destination IP, route type)."""
        self._down: set[str] = set()
        """Namespaces whose link ``set_link`` took down."""

    def __repr__(self) -> str:
        ips = {host.index: host.ip for host in self.hosts}
        return (
            f"<Network {self.name} subnet={self.subnet} hosts={ips} made={len(self._made)}"
            f" blocks={len(self._blocks)} down={len(self._down)}>"
        )

    async def __aenter__(self) -> Network:
        await self.create()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def create(self) -> None:
        """Make the namespaces, the bridge and the links; undo all of it on failure.

        Raises:
            NetnsError: an ``ip`` command failed (what was made is gone again).
        """
        try:
            await self._add_namespace(self.switch)
            await self._ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            await self._ip("-n", self.switch, "link", "set", "br0", "up")
            for host in self.hosts:
                await self._add_namespace(host.netns)
                self._write_etc(host)
                port = f"p{host.index}"
                await self._ip(
                    "-n", self.switch, "link", "add", port, "type", "veth",
                    "peer", "name", DEVICE, "netns", host.netns,
                )  # fmt: skip
                await self._ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
                await self._ip("-n", host.netns, "link", "set", "lo", "up")
                await self._ip("-n", host.netns, "addr", "add", self._cidr(host.ip), "dev", DEVICE)
                await self._ip("-n", host.netns, "link", "set", DEVICE, "up")
        except BaseException:
            with contextlib.suppress(NetnsError):  # the first error is the one to report
                await self.aclose()
            raise

    async def aclose(self) -> None:
        """Kill the children, delete the namespaces and their /etc/netns files.

        Idempotent; every step runs even when an earlier one failed.

        Raises:
            NetnsError: a namespace could not be deleted (after trying all).
        """
        children, self._children = self._children, []
        for child in children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGKILL)
        for child in children:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), KILL_TIMEOUT)
        made, self._made = self._made, []
        failed: list[str] = []
        for name in reversed(made):
            code, stderr = await _run("ip", "netns", "del", name)
            if code != 0:
                failed.append(f"{name}: {stderr.strip()}")
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
        if failed:  # the session's sweep tries these again
            raise NetnsError("ip netns del failed for " + "; ".join(failed))

    def set_names(self, host: Host, names: Mapping[str, str]) -> None:
        """Make ``host`` resolve each name in ``names`` to its IP (and nothing else but localhost).

        The hosts file is rewritten in place, so running processes see it.
        """
        lines = "".join(f"{ip}\t{name}\n" for name, ip in sorted(names.items()))
        _rewrite_in_place(host.hosts_file, _BASE_HOSTS + lines)

    def publish(self, names: Mapping[str, str]) -> None:
        """``set_names(host, names)`` on every host: a shared DNS."""
        for host in self.hosts:
            self.set_names(host, names)

    async def move(self, host: Host) -> str:
        """Give ``host`` a new address in the subnet (the old one is removed); return it.

        Raises:
            ValueError: the subnet has no unused address left.
            NetnsError: ``ip`` failed.
        """
        taken = {other.ip for other in self.hosts}
        while str(self.subnet.network_address + self._next_ip) in taken:
            self._next_ip += 1
        new_ip = str(self.subnet.network_address + self._next_ip)
        self._next_ip += 1
        if ipaddress.IPv4Address(new_ip) not in self.subnet:
            raise ValueError(f"{new_ip} is outside {self.subnet}: no unused address left")
        await self._ip("-n", host.netns, "addr", "del", self._cidr(host.ip), "dev", DEVICE)
        await self._ip("-n", host.netns, "addr", "add", self._cidr(new_ip), "dev", DEVICE)
        host.ip = new_ip
        return new_ip

    async def block(self, host: Host, peer: Host, route: Route = "blackhole") -> None:
        """Make every packet ``host`` sends to ``peer`` fail as ``route`` says (one way).

        ``peer``'s packets still reach ``host``; over TCP that means data
        from ``peer`` arrives but is never acknowledged.

        Raises:
            NetnsError: ``ip`` failed (the route may already be there).
        """
        await self._ip("-n", host.netns, "route", "add", route, f"{peer.ip}/32")
        self._blocks.add((host.netns, peer.ip, route))

    async def partition(
        self, side: Sequence[Host], other: Sequence[Host], route: Route = "blackhole"
    ) -> None:
        """Block every host of ``side`` from every host of ``other``, both ways.

        Raises:
            NetnsError: ``ip`` failed.
        """
        for host in side:
            for peer in other:
                await self.block(host, peer, route)
                await self.block(peer, host, route)

    async def set_link(self, host: Host, up: bool) -> None:
        """Take ``host``'s link to the bridge down (``up=False``) or bring it back.

        While it is down the host's subnet route is gone (its own sends fail
        at once) and packets to it are dropped at the bridge.

        Raises:
            NetnsError: ``ip`` failed.
        """
        await self._ip("-n", host.netns, "link", "set", DEVICE, "up" if up else "down")
        if up:
            self._down.discard(host.netns)
        else:
            self._down.add(host.netns)

    async def heal(self) -> None:
        """Remove every route ``block`` added and bring every link ``set_link`` took down up.

        Raises:
            NetnsError: ``ip`` failed.
        """
        for netns, ip, route in sorted(self._blocks):
            await self._ip("-n", netns, "route", "del", route, f"{ip}/32")
            self._blocks.discard((netns, ip, route))
        for netns in sorted(self._down):
            await self._ip("-n", netns, "link", "set", DEVICE, "up")
            self._down.discard(netns)

    async def spawn(self, host: Host, *argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        """Start ``argv`` inside ``host``'s namespace (``ip netns exec``).

        ``kwargs`` go to ``asyncio.create_subprocess_exec``. The process is
        killed by ``aclose`` if it is still running then, and, where
        util-linux's ``setpriv`` is installed, when this process dies (even
        by SIGKILL, which leaves no chance to run ``aclose``).
        """
        child = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", host.netns, *_DIE_WITH_PARENT, *argv, **kwargs
        )
        self._children.append(child)
        return child

    def _cidr(self, ip: str) -> str:
        return f"{ip}/{self.subnet.prefixlen}"

    async def _add_namespace(self, name: str) -> None:
        await self._ip("netns", "add", name)
        self._made.append(name)

    def _write_etc(self, host: Host) -> None:
        global _made_etc
        if not NETNS_ETC.exists():
            NETNS_ETC.mkdir(parents=True, exist_ok=True)
            _made_etc = True
        folder = NETNS_ETC / host.netns
        folder.mkdir(exist_ok=True)
        (folder / "resolv.conf").write_text(_RESOLV_CONF)
        self.set_names(host, {})

    async def _ip(self, *args: str) -> None:
        code, stderr = await _run("ip", *args)
        if code != 0:
            raise NetnsError(f"ip {' '.join(args)}: exit {code}: {stderr.strip()}")


async def _run(*argv: str) -> tuple[int, str]:
    """Run a short command; return its exit code and stderr (bounded by ``IP_TIMEOUT``)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), IP_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"{argv[0]} took longer than {IP_TIMEOUT} s"
    assert proc.returncode is not None
    return proc.returncode, stderr.decode(errors="replace")


def _rewrite_in_place(path: Path, text: str) -> None:
    """Replace ``path``'s contents keeping its inode (bind mounts of it see the change)."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # written before the truncate: a reader never sees it empty
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
