"""One measurement of ``bench.versus``, run as a script inside a code tree.

    python bench/_versus_child.py {default,plain} SECONDS

It imports only ``gorums_mw`` (whichever tree ``PYTHONPATH`` names), grpc and
protobuf, so the same file measures any release: three ``LocalReplicas`` in
this process, majority quorum calls with 1 and 64 in flight, and unary calls
identified by ``gorums-addr`` with 64 in flight. It prints one JSON line of
calls/s. ``plain`` turns batching off (only for trees that have it).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.wrappers_pb2 import BytesValue
from grpc import aio

from gorums_mw import GORUMS_ADDR_KEY
from gorums_mw.testing import LocalReplicas

SERVICE = "bench.Bench"
METHOD = "bench.Bench.Say"
PAYLOAD = BytesValue(value=b"x" * 32)


async def say(request: BytesValue, context: object) -> BytesValue:
    return BytesValue(value=request.value)


def setup(system: Any) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Say": grpc.unary_unary_rpc_method_handler(
                say,
                request_deserializer=BytesValue.FromString,
                response_serializer=BytesValue.SerializeToString,
            )
        },
    )
    system.handlers.add_generic_rpc_handlers((handler,))
    system.server.add_generic_rpc_handlers((handler,))


async def rate(call: Callable[[], Awaitable[object]], concurrency: int, seconds: float) -> float:
    done = 0
    running = True

    async def worker() -> None:
        nonlocal done
        while running:
            await call()
            done += 1

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(seconds / 4)  # warm up
    start, first = time.perf_counter(), done
    await asyncio.sleep(seconds)
    calls, elapsed = done - first, time.perf_counter() - start
    running = False
    await asyncio.gather(*workers)
    return calls / elapsed


async def measure(variant: str, seconds: float) -> dict[str, float]:
    options: dict[str, Any] = {"batching": False} if variant == "plain" else {}
    async with LocalReplicas(3, setup, **options) as replicas:
        await replicas.wait_full()
        config = replicas[1].config()

        def quorum() -> Awaitable[object]:
            return config.quorum_call(METHOD, PAYLOAD, BytesValue)

        found = {f"quorum x{n}": await rate(quorum, n, seconds) for n in (1, 64)}
        async with aio.insecure_channel(replicas[1].address) as channel:
            call = channel.unary_unary(
                f"/{SERVICE}/Say",
                request_serializer=BytesValue.SerializeToString,
                response_deserializer=BytesValue.FromString,
            )
            metadata = ((GORUMS_ADDR_KEY, replicas[2].address),)
            found["identified x64"] = await rate(
                lambda: call(PAYLOAD, metadata=metadata), 64, seconds
            )
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(sys.argv[1], float(sys.argv[2])))))
