"""Quorum-aware health: a replica's standard ``grpc.health.v1.Health`` service."""

from __future__ import annotations

import asyncio
import functools

from grpc_health.v1 import health_pb2, health_pb2_grpc

# grpc-stubs predates the aio servicer that grpcio-health-checking exports as ``health.aio``.
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined, unused-ignore]

from gorums_mw._calls.configuration import Configuration
from gorums_mw._system import System

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

_followers: set[asyncio.Task[None]] = set()
"""Strong references to the running follower tasks (the loop keeps only weak ones)."""


def add_quorum_health(
    system: System, *, quorum: int | None = None, service: str = ""
) -> health_aio.HealthServicer:
    """Serve ``grpc.health.v1.Health`` on ``system``'s server, healthy while it holds a quorum.

    The status of ``service`` is ``SERVING`` while ``system.config()`` (the
    connected replicas, counting this one) has at least ``quorum`` nodes,
    and ``NOT_SERVING`` otherwise. A task follows configuration changes
    (it waits on them, never polls) and ends when the server stops.
    ``Watch`` streams get each new status. As with grpc's own aio servicer,
    a status replaced before a watcher's next write (a flap shorter than an
    event-loop turn) is skipped: the watcher sees the latest one.

    Call it from a coroutine, before ``system.start()``, like
    ``add_servicer``; the first status is set before the server answers any
    call::

        system = System(1, nodes)
        add_quorum_health(system)
        async with system:
            ...

    Args:
        system: the replica; the service is added to ``system.server``.
        quorum: connected replicas needed, counting this one; default a
            majority of all configured replicas.
        service: the service name whose status is tracked; ``""`` (the
            default) is the health of the whole server.

    Returns:
        The grpc aio ``HealthServicer``; ``enter_graceful_shutdown()`` on it
        makes every status ``NOT_SERVING`` for good.

    Raises:
        ValueError: ``quorum`` is not 1..number of configured replicas.
        RuntimeError: no event loop is running.
    """
    total = system.config().configured
    needed = system.config().majority() if quorum is None else quorum
    if isinstance(needed, bool) or not isinstance(needed, int) or not 1 <= needed <= total:
        raise ValueError(f"quorum must be 1..{total} (the configured replicas), got {quorum!r}")
    loop = asyncio.get_running_loop()
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, system.server)
    task = loop.create_task(_follow(system, servicer, service, needed))
    _followers.add(task)
    task.add_done_callback(_followers.discard)
    return servicer


async def _follow(
    system: System, servicer: health_aio.HealthServicer, service: str, needed: int
) -> None:
    """Set the status from the configuration, then again at each flip, until the server stops."""
    serving = len(system.config()) >= needed
    # With no watcher yet this completes without suspending: the status is
    # set before the server (started after this task) can answer a call.
    await servicer.set(service, SERVING if serving else NOT_SERVING)
    stopped = asyncio.ensure_future(system.server.wait_for_termination())
    try:
        while True:
            flipped = asyncio.ensure_future(
                system.wait_for_config(functools.partial(_quorum_is, not serving, needed))
            )
            try:
                await asyncio.wait((flipped, stopped), return_when=asyncio.FIRST_COMPLETED)
            finally:
                flipped.cancel()
            if stopped.done():
                return
            serving = not serving
            await servicer.set(service, SERVING if serving else NOT_SERVING)
    finally:
        stopped.cancel()


def _quorum_is(held: bool, needed: int, config: Configuration) -> bool:
    """Whether ``config`` holding ``needed`` nodes is ``held``."""
    return (len(config) >= needed) == held
