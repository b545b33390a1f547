"""Item 4: what identifying a caller costs, next to one bare unary RPC.

    .venv/bin/python -m bench.identify [--rounds 5]

A server process serves the bare ``Say`` echo and a ``Time`` method whose
handler times identification on its own, real ``grpc.aio`` context (the
caller sends ``gorums-addr: 127.0.0.1:7`` from 127.0.0.1):

- ``identify_peer(context)``: the public function (reads the metadata through
  ``context.invocation_metadata()``, which grpc rebuilds on every call);
- ``parse_claim(metadata)``: what ``PeerIdentityInterceptor`` does per call in
  ``intercept_service``, on the call's metadata tuple;
- ``InboundManager.identify(context, parse_claim(metadata))``: the parse, the
  node lookup, the check against the connection and the ``Peer`` value: the
  interceptor's whole per-call identification;
- the same for a ``gorums-node-id: 2`` claim (Go Gorums' dialect), and for a
  node configured as ``localhost:7`` claiming that address with its ID
  (``localhost`` is the loopback pair, never looked up);
- each with a cold cache (claims are parsed once and cached, and a
  connection's accepted claim is remembered; a cold call is a caller never
  seen before).

This process is the client: it measures the bare unary RPC (median latency
with one call in flight; throughput and the server's CPU per call with 64 in
flight) and divides.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import grpc
from grpc import aio

from bench._common import (
    PAYLOAD,
    Child,
    Context,
    Payload,
    add_nice_option,
    announce,
    apply_nice,
    bench_handler,
    machine,
    median,
    print_table,
    say_stub,
    spawn,
    stop_all,
    until_stdin_closes,
)
from gorums_mw import GORUMS_ADDR_KEY, GORUMS_NODE_ID_KEY, Peer
from gorums_mw._identity.claims import Metadata, parse_claim

CLAIM: Final = "127.0.0.1:7"
TIME_PATH: Final = "/bench.Time/Time"
LOOPS: Final = 20_000
PROBES: Final = (
    "identify_peer",
    "parse_claim",
    "InboundManager.identify",
    "InboundManager.identify (node ID)",
    "InboundManager.identify (localhost)",
)


# ---- server -------------------------------------------------------------------


async def _probes() -> dict[str, Callable[[Context, bool], float]]:
    from gorums_mw import InboundManager, identify_peer, with_nodes
    from gorums_mw._identity import address as _address
    from gorums_mw._identity import claims as _claims
    from gorums_mw._identity import connection as _connection

    manager = InboundManager(1, with_nodes({1: "127.0.0.1:1", 2: CLAIM}))
    named = InboundManager(1, with_nodes({1: "127.0.0.1:1", 2: "localhost:7"}))

    def cold() -> None:  # a new claim object: the connection's remembered one no longer matches
        _address.ip_of.cache_clear()
        _connection.peer_ip.cache_clear()
        _address.parse_node_address.cache_clear()
        _claims._claim.cache_clear()

    def timed(fn: Callable[[], object], clear: bool) -> float:
        if clear:
            start = time.perf_counter_ns()
            for _ in range(LOOPS // 10):
                cold()
            clearing = time.perf_counter_ns() - start
            start = time.perf_counter_ns()
            for _ in range(LOOPS // 10):
                cold()
                fn()
            return (time.perf_counter_ns() - start - clearing) / (LOOPS // 10)
        start = time.perf_counter_ns()
        for _ in range(LOOPS):
            fn()
        return (time.perf_counter_ns() - start) / LOOPS

    def probe_identify(context: Context, clear: bool) -> float:
        assert identify_peer(context) == CLAIM
        return timed(lambda: identify_peer(context), clear)

    by_addr = ((GORUMS_ADDR_KEY, CLAIM),)
    by_id = ((GORUMS_NODE_ID_KEY, "2"),)
    by_localhost = ((GORUMS_ADDR_KEY, "localhost:7"), (GORUMS_NODE_ID_KEY, "2"))

    def probe_parse(context: Context, clear: bool) -> float:
        metadata = (*by_addr, ("user-agent", "grpc-python-asyncio/1.85.4"))
        return timed(lambda: parse_claim(metadata), clear)

    def identifies(
        manager: InboundManager, metadata: Metadata, configured: str
    ) -> Callable[[Context, bool], float]:
        def probe(context: Context, clear: bool) -> float:
            def identify() -> object:
                claim = parse_claim(metadata)
                assert claim is not None
                return manager.identify(context, claim)

            assert identify() == Peer(2, configured, context.peer())
            return timed(identify, clear)

        return probe

    return {
        "identify_peer": probe_identify,
        "parse_claim": probe_parse,
        "InboundManager.identify": identifies(manager, by_addr, CLAIM),
        "InboundManager.identify (node ID)": identifies(manager, by_id, CLAIM),
        "InboundManager.identify (localhost)": identifies(named, by_localhost, "localhost:7"),
    }


def _time_handler(
    probes: dict[str, Callable[[Context, bool], float]],
) -> grpc.GenericRpcHandler[Any, Any]:

    async def time_probe(request: Payload, context: Context) -> Payload:
        name, _, mode = request.value.decode().partition("/")
        return Payload(value=struct.pack("d", probes[name](context, mode == "cold")))

    handler = grpc.unary_unary_rpc_method_handler(
        time_probe,
        request_deserializer=Payload.FromString,
        response_serializer=Payload.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("bench.Time", {"Time": handler})


async def serve() -> None:
    server = aio.server()
    server.add_generic_rpc_handlers((bench_handler(), _time_handler(await _probes())))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    announce({"port": port})
    await until_stdin_closes()
    await server.stop(None)


# ---- client -------------------------------------------------------------------


async def rpc_costs(
    channel: aio.Channel, child: Child, seconds: float
) -> tuple[float, float, float]:
    """(median latency at 1 in flight, calls/s at 64, server CPU s per call at 64)."""
    call = say_stub(channel)
    latencies = []
    end = time.perf_counter() + seconds / 2
    while time.perf_counter() < end:
        start = time.perf_counter()
        await call(PAYLOAD)
        latencies.append(time.perf_counter() - start)
    done = 0
    running = True

    async def worker() -> None:
        nonlocal done
        while running:
            await call(PAYLOAD)
            done += 1

    workers = [asyncio.create_task(worker()) for _ in range(64)]
    await asyncio.sleep(0.2)
    n0, s0, t0 = done, child.cpu(), time.perf_counter()
    await asyncio.sleep(seconds / 2)
    n1, s1, t1 = done, child.cpu(), time.perf_counter()
    running = False
    await asyncio.gather(*workers)
    return median(latencies), (n1 - n0) / (t1 - t0), (s1 - s0) / max(1, n1 - n0)


async def drive(rounds: int) -> None:
    child = spawn("server", "bench.identify", "--serve")
    try:
        channel = aio.insecure_channel(f"127.0.0.1:{child.info['port']}")
        probe = channel.unary_unary(
            TIME_PATH,
            request_serializer=Payload.SerializeToString,
            response_deserializer=Payload.FromString,
        )
        metadata = (("gorums-addr", CLAIM),)
        costs: dict[str, list[float]] = {}
        latency: list[float] = []
        rate: list[float] = []
        server_cpu: list[float] = []
        await say_stub(channel)(PAYLOAD)
        for _ in range(rounds):
            for name in PROBES:
                for mode in ("warm", "cold"):
                    reply = await probe(Payload(value=f"{name}/{mode}".encode()), metadata=metadata)
                    (ns,) = struct.unpack("d", reply.value)
                    costs.setdefault(f"{name} ({mode} cache)", []).append(ns / 1e3)
            lat, calls, cpu = await rpc_costs(channel, child, 1.0)
            latency.append(lat)
            rate.append(calls)
            server_cpu.append(cpu)
        await channel.close(None)
    finally:
        await stop_all([child])
    print(machine())
    rpc_latency = median(latency) * 1e6
    rpc_period = 1e6 / median(rate)
    rpc_cpu = median(server_cpu) * 1e6
    print_table(
        "One bare unary RPC (same machine, loopback, client in another process)",
        ["measure", "µs"],
        [
            ["latency, 1 call in flight (median)", rpc_latency],
            ["1 / throughput, 64 calls in flight", rpc_period],
            ["server CPU per call, 64 in flight", rpc_cpu],
        ],
    )
    rows: list[list[object]] = []
    for name, values in costs.items():
        cost = median(values)
        rows.append(
            [
                name,
                cost,
                f"{cost / rpc_cpu:.2%}",
                f"{cost / rpc_period:.2%}",
                f"{cost / rpc_latency:.2%}",
            ]
        )
    print_table(
        f"Identification per call (median of {rounds} rounds of {LOOPS:,} calls)",
        ["what", "µs per call", "of server CPU per RPC", "of 1/throughput", "of latency"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    add_nice_option(parser)
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    if args.serve:
        asyncio.run(serve())
        return
    asyncio.run(drive(args.rounds))


if __name__ == "__main__":
    main()
