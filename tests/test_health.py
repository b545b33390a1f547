"""Quorum-aware health, watched through a real grpc health client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gorums_mw import System, add_quorum_health, with_nodes
from gorums_mw._health import _followers
from gorums_mw.testing import LocalReplicas

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def replicas() -> AsyncIterator[LocalReplicas]:
    """Three replicas with quorum health; none started yet."""
    replicas = LocalReplicas(3, add_quorum_health)
    try:
        yield replicas
    finally:
        await replicas.close()
        # The health followers end with their servers.
        await asyncio.wait_for(asyncio.gather(*_followers), 5)


async def test_watch_sees_quorum_come_go_and_return(replicas: LocalReplicas) -> None:
    await replicas.start([1])
    async with aio.insecure_channel(replicas[1].address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=30)

        async def next_status() -> int:
            response = await asyncio.wait_for(watch.read(), 10)
            assert isinstance(response, health_pb2.HealthCheckResponse)
            return int(response.status)

        assert await next_status() == NOT_SERVING  # alone: 1 of 3
        await replicas.start([2])
        assert await next_status() == SERVING  # 2 of 3
        # A third replica changes the configuration but not the status.
        await replicas.start([3])
        await replicas.wait_full()
        check = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == SERVING
        await replicas.stop(3)
        await replicas.stop(2)
        assert await next_status() == NOT_SERVING  # the very next message
        await replicas.start([2])
        assert await next_status() == SERVING
        watch.cancel()


async def test_status_is_set_before_the_first_call(replicas: LocalReplicas) -> None:
    await replicas.start([1])
    async with aio.insecure_channel(replicas[1].address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        check = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == NOT_SERVING


async def test_custom_quorum_and_service() -> None:
    def setup(system: System) -> None:
        add_quorum_health(system, quorum=3, service="storage.Storage")

    async with LocalReplicas(3, setup) as replicas:
        await replicas.wait_full()
        async with aio.insecure_channel(replicas[2].address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="storage.Storage")
            watch = stub.Watch(request, timeout=30)
            first = await asyncio.wait_for(watch.read(), 10)
            assert first.status == SERVING
            await replicas.stop(3)
            second = await asyncio.wait_for(watch.read(), 10)
            assert second.status == NOT_SERVING
            # The whole server's status ("") is the servicer's own, untouched.
            overall = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert overall.status == SERVING
            watch.cancel()


@pytest.mark.parametrize("quorum", [0, 4, -1, True])
async def test_quorum_out_of_range(quorum: int) -> None:
    system = System(1, with_nodes({1: "127.0.0.1:1", 2: "127.0.0.1:2", 3: "127.0.0.1:3"}))
    with pytest.raises(ValueError, match=r"quorum must be 1\.\.3"):
        add_quorum_health(system, quorum=quorum)
