"""Helpers for testing code built on gorums-mw: a set of replicas in one process.

Example::

    def setup(system: System) -> None:
        system.add_servicer(add_StoreServicer_to_server, Store())

    async with LocalReplicas(3, setup) as replicas:
        config = await replicas[1].wait_for_config(lambda c: len(c) == 3, timeout=10)
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

from opentelemetry import metrics, trace

from gorums_mw._limits import Limits
from gorums_mw._options import with_nodes
from gorums_mw._settings import Backoff, Keepalive
from gorums_mw._system import System

__all__ = ["LocalReplicas", "free_ports"]

Setup = Callable[[System], None]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that were free on ``host`` a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class LocalReplicas:
    """``size`` symmetric replicas (IDs 1..size) on loopback, in this process.

    Each replica is a ``System``; ``setup`` registers its servicers before it
    starts. Replicas can be stopped and restarted on the same address.
    """

    def __init__(
        self,
        size: int,
        setup: Setup,
        *,
        host: str = "127.0.0.1",
        keepalive: Keepalive | None = None,
        backoff: Backoff | None = None,
        limits: Limits | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        batching: bool = True,
    ) -> None:
        """Choose addresses for ``size`` replicas (nothing starts yet).

        Args:
            size: the number of replicas.
            setup: called with each ``System`` before it starts (register servicers).
            host: the loopback address to listen on (``127.0.0.1`` or ``::1``).
            keepalive: keepalive settings of every replica.
            backoff: reconnect delays of every replica.
            limits: message size and buffer bounds of every replica.
            tracer_provider: where every replica's spans go.
            meter_provider: where every replica's metrics go.
            batching: whether the replicas batch (see ``System``).

        Raises:
            ValueError: ``size`` is below 1.
        """
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        bracketed = f"[{host}]" if ":" in host else host
        ports = free_ports(size, host)
        self.nodes = with_nodes({i + 1: f"{bracketed}:{port}" for i, port in enumerate(ports)})
        """The ``with_nodes`` option every replica is configured with."""
        self._setup = setup
        self._keepalive = keepalive
        self._backoff = backoff
        self._limits = limits
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._batching = batching
        self._systems: dict[int, System] = {}

    def __getitem__(self, node_id: int) -> System:
        return self._systems[node_id]

    def __iter__(self) -> Iterator[System]:
        return iter(self._systems.values())

    def __repr__(self) -> str:
        return f"<LocalReplicas ids={sorted(self.nodes.nodes)} running={sorted(self._systems)}>"

    @property
    def running(self) -> list[int]:
        """IDs of the replicas that are running."""
        return sorted(self._systems)

    async def start(self, ids: Iterable[int] | None = None) -> None:
        """Start replicas ``ids`` (default all), in the order given.

        Raises:
            RuntimeError: one of them is already running.
        """
        for node_id in self.nodes.nodes if ids is None else ids:
            if node_id in self._systems:
                raise RuntimeError(f"replica {node_id} is already running")
            system = System(
                node_id,
                self.nodes,
                keepalive=self._keepalive,
                backoff=self._backoff,
                limits=self._limits,
                tracer_provider=self._tracer_provider,
                meter_provider=self._meter_provider,
                batching=self._batching,
            )
            self._setup(system)
            await system.start()
            self._systems[node_id] = system

    async def stop(self, node_id: int) -> None:
        """Stop replica ``node_id`` (its streams close; peers notice at once)."""
        await self._systems.pop(node_id).stop()

    async def wait_full(self, timeout: float = 20.0) -> None:
        """Wait until every running replica's configuration holds every running replica."""
        wanted = tuple(self.running)
        await asyncio.gather(
            *(s.wait_for_config(lambda c: c.ids == wanted, timeout) for s in self._systems.values())
        )

    async def close(self) -> None:
        """Stop every running replica."""
        systems, self._systems = list(self._systems.values()), {}
        await asyncio.gather(*(system.stop() for system in systems))

    async def __aenter__(self) -> LocalReplicas:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
