"""Processes on namespace hosts, read line by line with bounded waits."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from tests.multihost.netns import Host, Network
from tests.reliability.replica_proc import node_args, parse_nodes

ROOT = Path(__file__).resolve().parents[2]
PORT = 9001
"""Every replica listens on this port: each host has its own IP."""
START_TIMEOUT = 15.0
"""Seconds a replica process may take to print ``ready`` (imports on a loaded 2-core machine)."""


def name(node_id: int) -> str:
    """Host ``node_id``'s DNS name (in the hosts files ``Network.publish`` writes)."""
    return f"host{node_id}.test"


def ip_nodes(net: Network) -> dict[int, str]:
    """Replica N at host N's current IP."""
    return {host.index: f"{host.ip}:{PORT}" for host in net.hosts}


def name_nodes(net: Network) -> dict[int, str]:
    """Replica N at host N's name."""
    return {host.index: f"{name(host.index)}:{PORT}" for host in net.hosts}


def dns(net: Network) -> dict[str, str]:
    """Every host's name → its current IP."""
    return {name(host.index): host.ip for host in net.hosts}


class Child:
    """A process in a host's namespace whose stdout lines a test waits for."""

    def __init__(self, label: str, proc: asyncio.subprocess.Process, stderr: IO[bytes]) -> None:
        self.label = label
        self.proc = proc
        self.lines: list[str] = []
        """Every stdout line read so far, in order."""
        self._stderr = stderr

    @classmethod
    async def start(cls, net: Network, host: Host, label: str, *argv: str) -> Child:
        """Start ``python -m argv...`` on ``host``, from the project root."""
        stderr = tempfile.TemporaryFile()  # noqa: SIM115  # closed by close()
        proc = await net.spawn(
            host,
            sys.executable,
            "-m",
            *argv,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "GRPC_VERBOSITY": "ERROR", "PYTHONUNBUFFERED": "1"},
        )
        return cls(label, proc, stderr)

    async def expect(self, match: str | Callable[[str], bool], timeout: float) -> str:
        """Read lines until one equals ``match`` (or satisfies it); return it.

        Raises:
            AssertionError: the process ended, or ``timeout`` seconds passed,
                first; the message has its output so far and its stderr.
        """
        wanted = match if callable(match) else match.__eq__
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await stdout.readline()
                    if not raw:
                        await asyncio.wait_for(self.proc.wait(), 5)
                        raise AssertionError(
                            f"{self.label} exited ({self.proc.returncode}) waiting for {match!r}"
                            + self.report()
                        )
                    line = raw.decode(errors="replace").rstrip("\n")
                    self.lines.append(line)
                    if wanted(line):
                        return line
        except TimeoutError:
            raise AssertionError(
                f"{self.label}: no line {match!r} within {timeout} s" + self.report()
            ) from None

    async def ask(self, command: str, replies: tuple[str, ...], timeout: float = 10.0) -> str:
        """Send a stdin command; return the next line that starts with one of ``replies``."""
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(command.encode() + b"\n")
        await stdin.drain()
        return await self.expect(lambda line: line.startswith(replies), timeout)

    async def finish(self, timeout: float) -> list[str]:
        """Wait for the process to end by itself; return all of its stdout lines."""
        try:
            stdout, _ = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.label} still running after {timeout} s" + self.report()
            ) from None
        self.lines.extend(stdout.decode(errors="replace").splitlines())
        return self.lines

    async def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 5)

    def report(self) -> str:
        """Its stdout so far and the tail of its stderr, for a failure message."""
        self._stderr.seek(0)
        err = self._stderr.read()[-3000:].decode(errors="replace")
        return f"\n  stdout: {self.lines}\n  stderr: {err}"

    def close(self) -> None:
        self._stderr.close()


class Replica:
    """``tests.reliability.replica_proc`` run as replica ``node_id`` on ``host``."""

    def __init__(self, net: Network, host: Host, node_id: int, nodes: Mapping[int, str]) -> None:
        self.net = net
        self.host = host
        self.node_id = node_id
        self.nodes = dict(nodes)
        self.child: Child | None = None
        self.known: dict[int, str] = {}
        """The known nodes as the process kept them (its ``nodes`` line)."""

    def __repr__(self) -> str:
        running = self.child is not None and self.child.proc.returncode is None
        return f"<Replica {self.node_id} on {self.host.netns} ({self.host.ip}) running={running}>"

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and wait for its ``ready`` line.

        Raises:
            AssertionError: it exited or was not ready within ``timeout``.
        """
        if self.child is not None:
            await self.stop()
        self.child = await Child.start(
            self.net,
            self.host,
            f"replica {self.node_id}",
            "tests.reliability.replica_proc",
            "--id",
            str(self.node_id),
            "--nodes",
            node_args(self.nodes),
        )
        await self.child.expect(f"ready {self.node_id}", timeout)
        (nodes_line,) = [line for line in self.child.lines if line.startswith("nodes ")]
        self.known = parse_nodes(nodes_line.removeprefix("nodes "))

    @property
    def running(self) -> Child:
        assert self.child is not None, f"replica {self.node_id} is not started"
        return self.child

    async def wait_config(self, ids: tuple[int, ...], timeout: float) -> None:
        """Wait for the line reporting configuration ``ids``."""
        await self.running.expect("config " + ",".join(map(str, ids)), timeout)

    async def config_now(self) -> tuple[int, ...]:
        """Its configuration at this moment (asked on stdin)."""
        reply = await self.running.ask("config?", ("config-now ",))
        return tuple(int(node_id) for node_id in reply.split()[1].split(",") if node_id)

    async def quorum(self) -> str:
        """A quorum call on its whole configuration: ``"quorum 1,2,3"`` or ``"quorum-failed ..."``.

        The call itself is bounded by 5 s (``replica_proc``).
        """
        return await self.running.ask("quorum", ("quorum ", "quorum-failed "))

    async def default_quorum(self) -> str:
        """A quorum call with the default quorum (no ``quorum=``), bounded by 2 s; as ``quorum``."""
        return await self.running.ask("default-quorum", ("quorum ", "quorum-failed "))

    async def stop(self) -> None:
        """SIGKILL the process (no goodbye) and reap it."""
        if self.child is not None:
            await self.child.kill()
            self.child.close()
            self.child = None
