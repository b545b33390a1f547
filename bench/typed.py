"""The generated typed calls against the string API they wrap, in the same run.

    .venv/bin/python -m bench.typed [--rounds 7] [--calls 20000] [--seconds 1.0]

The typed calls come from ``protos/bench/typed.proto`` (``bench/typed_gorums.py``):
``TypedConfiguration(config).Say(request)`` is ``config.quorum_call(
"bench.typed.Typed.Say", request, BytesValue)`` underneath, and
``TypedNode(node).Echo(request)`` is ``node.rpc(...)``. Three measures, each
variant against ``string`` in the same round (rotating order; medians over
rounds). Costs are CPU time, not wall time, so a busy machine (other
processes on the same cores) skews them little:

- ``wrapper``: the call expression alone, no call made: build the coroutine
  and close it, ``--calls`` times, in thread CPU ns per call (best and
  median of the rounds). The extra nanoseconds are the wrapper's whole cost.
- ``in-process``: complete quorum calls on a configuration of 3 nodes whose
  channel answers at once (a pre-resolved reply): the library's own CPU
  work per call, no network, in thread CPU µs per call. ``typed`` reuses
  one wrapper, ``typed/new`` wraps the configuration on every call (the
  documented pattern, ``TypedConfiguration(system.config())``), ``rpc``
  compares ``Node.rpc`` with ``TypedNode.Echo``.
- ``replicas``: quorum calls over ``LocalReplicas(3)`` on loopback (NodeStream,
  real sockets, all in this process), 64 in flight, ``--seconds`` per variant:
  process CPU µs per call (every thread: the caller, the replicas, grpc's)
  and wall-clock calls/s.

A ratio is string cost / typed cost (or typed calls/s / string calls/s):
above 1 the typed call is cheaper, 1.00 costs the same.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc is imported

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final

from google.protobuf.wrappers_pb2 import BytesValue

from bench import typed_pb2_grpc
from bench._common import machine, median, print_table
from bench.typed_gorums import TypedConfiguration, TypedNode
from gorums_mw import Configuration, Node, System
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream.channel import ReplySink
from gorums_mw.testing import LocalReplicas

SAY: Final = "bench.typed.Typed.Say"
ECHO: Final = "bench.typed.Typed.Echo"
REQUEST: Final = BytesValue(value=b"x" * 32)
IN_FLIGHT: Final = 64

Call = Callable[[], Awaitable[object]]


class Instant:
    """A node's channel that answers every request at once with its own payload."""

    closed = False

    def request(
        self,
        method: str,
        payload: bytes,
        entries: object,
        sink: ReplySink,
        slot: int,
        *,
        streaming: bool = False,
    ) -> int:
        sink.deliver(slot, Message(message_seq_no=1, method=method, payload=payload))
        return 1

    def withdraw(self, ticket: int) -> bool:
        return False

    def forget(self, ticket: int) -> None:
        pass

    def cast(self, method: str, payload: bytes, entries: object = ()) -> bool:
        return True


class Typed(typed_pb2_grpc.TypedServicer):
    """Echoes the request."""

    async def Say(self, request: BytesValue, context: Any) -> BytesValue:
        return request

    async def Echo(self, request: BytesValue, context: Any) -> BytesValue:
        return request


def variants(
    config: Configuration, node: Node
) -> dict[str, Callable[[], Coroutine[Any, Any, Any]]]:
    """The calls compared, each a fresh coroutine per call."""
    calls = TypedConfiguration(config)
    one = TypedNode(node)
    return {
        "string": lambda: config.quorum_call(SAY, REQUEST, BytesValue),
        "typed": lambda: calls.Say(REQUEST),
        "typed/new": lambda: TypedConfiguration(config).Say(REQUEST),
        "rpc string": lambda: node.rpc(ECHO, REQUEST, BytesValue),
        "rpc typed": lambda: one.Echo(REQUEST),
    }


def rotate(names: Sequence[str], round_index: int) -> list[str]:
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def wrapper_cost(
    calls: dict[str, Callable[[], Coroutine[Any, Any, Any]]], count: int
) -> dict[str, float]:
    """Thread CPU ns to build (and close) each call's coroutine, without running it."""
    costs: dict[str, float] = {}
    for name, make in calls.items():
        gc.collect()
        started = time.thread_time_ns()
        for _ in range(count):
            make().close()
        costs[name] = (time.thread_time_ns() - started) / count
    return costs


async def in_process(
    calls: dict[str, Callable[[], Coroutine[Any, Any, Any]]], count: int
) -> dict[str, float]:
    """Thread CPU µs per call of each variant, one call after another."""
    costs: dict[str, float] = {}
    for name, make in calls.items():
        gc.collect()
        started = time.thread_time()
        for _ in range(count):
            await make()
        costs[name] = (time.thread_time() - started) / count * 1e6
    return costs


async def closed_loop(make: Call, seconds: float) -> tuple[float, float]:
    """Process CPU µs per call, and calls/s, with ``IN_FLIGHT`` callers calling back to back."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await make()
            done += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))
    return (time.process_time() - cpu) / done * 1e6, done / (time.perf_counter() - started)


async def run(rounds: int, count: int, seconds: float) -> dict[str, Any]:
    nodes = [Node(node_id, f"127.0.0.1:{node_id}") for node_id in (1, 2, 3)]
    for node in nodes:
        node.attach(Instant())
    instant = variants(Configuration(nodes), nodes[1])
    names = list(instant)
    wrapper: dict[str, list[float]] = {name: [] for name in names}
    process: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(2):  # warm up: caches, the method check, the allocator
        await in_process(instant, count // 10)
    for index in range(rounds):
        order = rotate(names, index)
        for name, cost in wrapper_cost({n: instant[n] for n in order}, count).items():
            wrapper[name].append(cost)
        for name, cost in (await in_process({n: instant[n] for n in order}, count)).items():
            process[name].append(cost)

    def setup(system: System) -> None:
        system.add_servicer(typed_pb2_grpc.add_TypedServicer_to_server, Typed())

    replicas: dict[str, list[float]] = {"string": [], "typed/new": []}
    rates: dict[str, list[float]] = {"string": [], "typed/new": []}
    async with LocalReplicas(3, setup) as local:
        await local.wait_full()
        system = local[1]
        over_network: dict[str, Call] = {
            "string": lambda: system.config().quorum_call(SAY, REQUEST, BytesValue, timeout=5),
            "typed/new": lambda: TypedConfiguration(system.config()).Say(REQUEST, timeout=5),
        }
        await closed_loop(over_network["string"], seconds / 2)  # warm up
        for index in range(rounds):
            for name in rotate(list(over_network), index):
                cost, rate = await closed_loop(over_network[name], seconds)
                replicas[name].append(cost)
                rates[name].append(rate)
    return {"wrapper": wrapper, "in_process": process, "replicas": replicas, "rates": rates}


def ratio(samples: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """The median over rounds of ``numerator / denominator`` (same-round pairs)."""
    pairs = zip(samples[numerator], samples[denominator], strict=True)
    return median([mine / theirs for mine, theirs in pairs])


PAIRS: Final = (
    ("string", "string"),
    ("typed", "string"),
    ("typed/new", "string"),
    ("rpc string", "rpc string"),
    ("rpc typed", "rpc string"),
)


def report(results: dict[str, Any], rounds: int, count: int, seconds: float) -> None:
    print(f"bench.typed: {machine()}")
    print(f"rounds={rounds} calls={count} seconds={seconds} in_flight={IN_FLIGHT}")
    wrapper = results["wrapper"]
    print_table(
        "Building the call (coroutine made and closed, not run): thread CPU ns per call",
        ["variant", "best ns", "extra (best)", "median ns", "extra (median, same round)"],
        [
            [
                name,
                min(wrapper[name]),
                min(wrapper[name]) - min(wrapper[base]),
                median(wrapper[name]),
                median([m - t for m, t in zip(wrapper[name], wrapper[base], strict=True)]),
            ]
            for name, base in PAIRS
        ],
    )
    process = results["in_process"]
    print_table(
        "Whole calls in process (3 nodes answering at once): thread CPU µs per call",
        ["variant", "µs/call", "ratio string/typed"],
        [[name, median(process[name]), ratio(process, base, name)] for name, base in PAIRS],
    )
    cost, rates = results["replicas"], results["rates"]
    print_table(
        f"Quorum calls over LocalReplicas(3), loopback, {IN_FLIGHT} in flight",
        ["variant", "CPU µs/call", "ratio string/typed", "calls/s", "ratio typed/string"],
        [
            [
                name,
                median(cost[name]),
                ratio(cost, "string", name),
                median(rates[name]),
                ratio(rates, name, "string"),
            ]
            for name in ("string", "typed/new")
        ],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.typed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000, help="calls per variant per round")
    parser.add_argument("--seconds", type=float, default=1.0, help="per variant per round")
    parser.add_argument("--json", action="store_true", help="print the raw samples as JSON too")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.rounds, args.calls, args.seconds))
    report(results, args.rounds, args.calls, args.seconds)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
