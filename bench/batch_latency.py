"""Batched against unbatched NodeStreams at one call in flight: does batching add latency?

    .venv/bin/python -m bench.batch_latency [--replicas 3] [--rounds 10] [--calls 400]

``bench.quorum`` rotates five variants per round, so at one call in flight
its batched and unbatched rows are minutes apart. This one alternates only
those two, call block by call block: replica processes as in ``bench.quorum``
(``--serve-replica``), this process the coordinator with two
``OutboundManager``s (``batching=False`` and the default), majority quorum
calls one at a time. It reports the p50 latency and the coordinator's CPU
per call, and their ratios batched / unbatched.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from bench import quorum
from bench._common import (
    PAYLOAD,
    SAY_METHOD,
    Payload,
    machine,
    median,
    print_table,
)
from gorums_mw import OutboundManager

WARMUP_CALLS = 50


async def drive(replicas: int, rounds: int, calls: int) -> None:
    async with quorum.cluster(replicas) as running:
        managers = {"unbatched": running.unbatched, "batched": running.batched}
        latencies, cpu = await measure(managers, rounds, calls)
    p50 = {name: median(values) * 1e3 for name, values in latencies.items()}
    cpu_us = {name: median(values) for name, values in cpu.items()}
    print_table(
        f"{replicas} replicas, 1 call in flight, {rounds} rounds x {calls} calls; {machine()}",
        ["stream", "p50 ms", "p50 x unbatched", "coordinator CPU µs/call", "CPU x unbatched"],
        [
            [
                name,
                p50[name],
                p50[name] / p50["unbatched"],
                cpu_us[name],
                cpu_us[name] / cpu_us["unbatched"],
            ]
            for name in managers
        ],
    )


async def measure(
    managers: dict[str, OutboundManager], rounds: int, calls: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Latency of every call and CPU µs per call of every block, by stream kind."""
    latencies: dict[str, list[float]] = {name: [] for name in managers}
    cpu: dict[str, list[float]] = {name: [] for name in managers}
    names = list(managers)
    for index in range(rounds):
        for name in names if index % 2 else names[::-1]:
            config = managers[name].config()
            for _ in range(WARMUP_CALLS):
                await config.quorum_call(SAY_METHOD, PAYLOAD, Payload)
            start_cpu = time.process_time()
            for _ in range(calls):
                start = time.perf_counter()
                await config.quorum_call(SAY_METHOD, PAYLOAD, Payload)
                latencies[name].append(time.perf_counter() - start)
            cpu[name].append((time.process_time() - start_cpu) / calls * 1e6)
    return latencies, cpu


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args(argv)
    asyncio.run(drive(args.replicas, args.rounds, args.calls))


if __name__ == "__main__":
    main()
