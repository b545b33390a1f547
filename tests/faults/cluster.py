"""The processes of a fault run on namespace hosts, the faults made to them, and what they see.

Replica N is ``python -m examples.storage --id N`` on host N, its register in
a data file that outlives its process; the clients are
``tests.faults.client`` on hosts 4 and 5. A replica reports each change of
its configuration on stdout (``replica N: configuration [1, 2, 3]``); a
task per replica reads those lines, so the cluster knows at every moment
which replicas each one has, and wakes whoever waits for a change.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.faults.checks import CLIENT_TIMEOUT
from tests.faults.schedule import CLIENTS, REPLICAS, Fault
from tests.multihost._procs import Child
from tests.multihost.netns import Host, Network, Route

PORT = 9001
KEEPALIVE = 1.0
"""Keepalive interval and timeout of replicas and clients: a peer that vanished is
dropped within 2 s."""
WORKERS = 3
"""Operations each client runs at once."""
KEYS = 4
"""Registers the clients share: few, so that operations on a key overlap often."""
START_TIMEOUT = 60.0
"""Seconds a process may take to start: importing grpc took over 20 s on this 2-core machine
at a load average of 20 (other engineers' benchmarks)."""
STOP_TIMEOUT = 10.0
"""Seconds a replica may take to stop after SIGTERM, or a client to finish its calls."""
CONFIG_LINE = re.compile(r"replica \d+: configuration \[([\d, ]*)\]")


class ReplicaProcess:
    """One storage replica on its host: started, hit and started again by faults."""

    def __init__(self, net: Network, host: Host, nodes: str, data: Path) -> None:
        self.net, self.host, self.nodes, self.data = net, host, nodes, data
        self.child: Child | None = None
        self.config: tuple[int, ...] = ()
        """Its configuration as last reported; empty while it is not running."""
        self._reader: asyncio.Task[None] | None = None

    async def start(self, changed: Callable[[], None]) -> float:
        """Start the process; return when it listened. ``changed`` is called on each report."""
        node = str(self.host.index)
        argv = ["examples.storage", "--id", node, "--nodes", self.nodes]
        argv += ["--data", str(self.data), "--keepalive", str(KEEPALIVE)]
        self.child = child = await Child.start(self.net, self.host, f"replica {node}", *argv)
        await child.expect(
            lambda line: line.startswith(f"replica {node} listening on "), START_TIMEOUT
        )
        listened = time.monotonic()
        self.config = (self.host.index,)
        for line in child.lines:
            self._report(line)
        self._reader = asyncio.create_task(self._read(child, changed))
        changed()
        return listened

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process (SIGSTOP, SIGCONT)."""
        assert self.child is not None, self
        self.child.proc.send_signal(signum)

    async def stop(self, signum: int) -> None:
        """End the process with ``signum`` (SIGKILL, or SIGTERM for a clean stop) and reap it."""
        child = self.child
        if child is None:
            return
        self.child = None
        if child.proc.returncode is None:
            child.proc.send_signal(signum)
            child.proc.send_signal(signal.SIGCONT)  # a paused process cannot stop cleanly
            try:
                await asyncio.wait_for(child.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                await child.kill()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, STOP_TIMEOUT)  # its stdout ends with it
        self.config = ()
        child.close()

    def _report(self, line: str) -> None:
        match = CONFIG_LINE.fullmatch(line)
        if match is not None:
            self.config = tuple(int(node) for node in match.group(1).split(", ") if node)

    async def _read(self, child: Child, changed: Callable[[], None]) -> None:
        """Follow the process's stdout to its end."""
        stdout = child.proc.stdout
        assert stdout is not None
        while raw := await stdout.readline():
            line = raw.decode(errors="replace").rstrip("\n")
            child.lines.append(line)
            self._report(line)
            changed()
        self.config = ()
        changed()

    def __repr__(self) -> str:
        return f"<ReplicaProcess {self.host.index} config={self.config}>"


class Cluster:
    """Three replicas and two clients on a ``Network`` of five hosts."""

    def __init__(self, net: Network, workdir: Path, seed: int) -> None:
        self.net = net
        self.workdir = workdir
        self.seed = seed
        nodes = ",".join(f"{i}={net.hosts[i - 1].ip}:{PORT}" for i in REPLICAS)
        self.nodes = nodes
        self.replicas = {
            i: ReplicaProcess(net, net.hosts[i - 1], nodes, workdir / f"replica-{i}.jsonl")
            for i in REPLICAS
        }
        self.clients: dict[int, Child] = {}
        self._change = asyncio.Event()

    def histories(self) -> list[Path]:
        """The clients' history files."""
        return [self.workdir / f"client-{i}.jsonl" for i in CLIENTS]

    async def start(self) -> None:
        """Start the replicas, wait until each has all three, then start the clients.

        Raises:
            AssertionError: a process did not start, or the replicas did not connect.
        """
        await asyncio.gather(*(replica.start(self._changed) for replica in self.replicas.values()))
        try:
            await self.wait_full(START_TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"replicas not connected: {self.configs()}") from None
        for i, history in zip(CLIENTS, self.histories(), strict=True):
            argv = ["tests.faults.client", "--name", f"c{i}", "--replicas", self.nodes]
            argv += ["--history", str(history), "--seed", str(self.seed)]
            argv += ["--workers", str(WORKERS), "--keys", str(KEYS)]
            argv += ["--timeout", str(CLIENT_TIMEOUT), "--keepalive", str(KEEPALIVE)]
            self.clients[i] = await Child.start(
                self.net, self.net.hosts[i - 1], f"client {i}", *argv
            )
        for client in self.clients.values():
            await client.expect("ready", START_TIMEOUT)

    async def inject(self, fault: Fault) -> None:
        """Make ``fault``."""
        side = [self.net.hosts[i - 1] for i in fault.side]
        other = [self.net.hosts[i - 1] for i in fault.other]
        if fault.kind in ("split", "isolate", "isolate-client", "prohibit"):
            route: Route = "prohibit" if fault.kind == "prohibit" else "blackhole"
            await self.net.partition(side, other, route)
        elif fault.kind == "one-way":
            await self.net.block(side[0], other[0])
        elif fault.kind == "link-down":
            await self.net.set_link(side[0], up=False)
        elif fault.kind == "stop":
            self.replicas[fault.side[0]].signal(signal.SIGSTOP)
        else:
            signum = signal.SIGKILL if fault.kind == "kill" else signal.SIGTERM
            await self.replicas[fault.side[0]].stop(signum)

    async def heal(self, fault: Fault) -> float:
        """Undo ``fault``; return when it was undone (when a restarted replica listened)."""
        if fault.kind in ("kill", "restart"):
            return await self.replicas[fault.side[0]].start(self._changed)
        if fault.kind == "stop":
            self.replicas[fault.side[0]].signal(signal.SIGCONT)
        else:
            await self.net.heal()
        return time.monotonic()

    def full(self) -> bool:
        """Whether every replica has every replica in its configuration."""
        return all(replica.config == REPLICAS for replica in self.replicas.values())

    async def wait_full(self, timeout: float) -> float:
        """Return the time at which every replica has all three (``full``).

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not self.full():
                await self._change.wait()
        return time.monotonic()

    async def stop_clients(self) -> None:
        """Tell the clients to stop and wait until their calls in flight have ended.

        Raises:
            AssertionError: a client did not finish in time (with its output).
        """
        for client in self.clients.values():
            assert client.proc.stdin is not None
            client.proc.stdin.write(b"stop\n")
            await client.proc.stdin.drain()
        for client in self.clients.values():
            await client.expect(
                lambda line: line.startswith("done "), CLIENT_TIMEOUT + STOP_TIMEOUT
            )

    async def aclose(self) -> None:
        """Kill every process (the network's ``aclose`` also would) and close their files."""
        for replica in self.replicas.values():
            await replica.stop(signal.SIGKILL)
        for client in self.clients.values():
            await client.kill()
            client.close()
        self.clients.clear()

    def configs(self) -> dict[int, tuple[int, ...]]:
        """Each replica's configuration now (empty: not running)."""
        return {i: replica.config for i, replica in self.replicas.items()}

    def _changed(self) -> None:
        """Wake every ``wait_full``."""
        event, self._change = self._change, asyncio.Event()
        event.set()
