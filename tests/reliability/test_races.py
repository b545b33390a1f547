"""Simultaneous dials: every pair agrees on one stream, every time, also after restarts."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from gorums_mw.testing import LocalReplicas
from tests.stream.test_system import Echo, assert_one_stream_per_pair, setup_echo

pytestmark = pytest.mark.usefixtures("both_framings")

RUNS = int(os.environ.get("GORUMS_RACE_RUNS", "8"))


async def start_racing(replicas: LocalReplicas, rng: random.Random) -> None:
    """Start every replica at once, each after its own random delay."""

    async def start_one(node_id: int) -> None:
        await asyncio.sleep(rng.random() * 0.02)  # a random head start, not synchronization
        await replicas.start([node_id])

    order = list(replicas.nodes.nodes)
    rng.shuffle(order)
    await asyncio.gather(*(start_one(node_id) for node_id in order))


async def race_once(seed: int) -> None:
    rng = random.Random(seed)
    servicers: dict[int, Echo] = {}
    replicas = LocalReplicas(5, setup_echo(servicers))
    try:
        await start_racing(replicas, rng)
        await replicas.wait_full()
        await assert_one_stream_per_pair(replicas)
        for _ in range(2):
            victim = rng.choice(replicas.running)
            await replicas.stop(victim)
            await replicas.start([victim])
            await replicas.wait_full()
            await assert_one_stream_per_pair(replicas)
    finally:
        await replicas.close()


@pytest.mark.timeout(180)
async def test_simultaneous_starts_agree_on_one_stream_per_pair() -> None:
    for seed in range(RUNS):
        await race_once(seed)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_simultaneous_starts_many_times() -> None:
    for seed in range(1000, 1100):
        await race_once(seed)
