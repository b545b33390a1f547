"""Item 1: what a server interceptor costs per unary RPC and per stream message.

    .venv/bin/python -m bench.interceptor [--rounds 12] [--seconds 0.3] [--nice -10] [--pin]
        [--base REVISION]

One server process per variant (all started up front, idle while another is
measured) and this process as the client, on loopback. Rounds alternate the
variants in rotating order; each round measures, per variant, unary calls/s
with 64 calls in flight and bidi-stream messages/s on one stream (a window of
64 messages in flight), and reads the server's CPU time from /proc. Ratios
are taken against the mean of the bare runs just before and after each
variant's run; pairs whose two bare runs differ by more than 10% (the
machine's other load changed meanwhile) are dropped, and the median over the
remaining pairs is reported. ``--pin`` puts the servers on CPU 0 and the
client on CPU 1, so a server is CPU-bound on its core. ``--base`` adds the
row ``gorums-md@base``: the ``gorums-md`` server run from a temporary
checkout of an earlier revision, measured in the same rounds.

Variants:

- ``bare``: no interceptor, plain client.
- ``gorums``: ``PeerIdentityInterceptor``; the client is an identified replica
  (``ClientIdentityInterceptor``), so every call is validated and bound.
- ``gorums-md``: the same server; the client sends ``gorums-addr`` as plain
  call metadata instead of through a client interceptor (isolates the server).
- ``gorums-external``: the same server; a plain client (no claim): an
  external caller, which the interceptor passes through.
- ``bare-md``: the bare server, and the client of ``gorums-md``: what sending
  the claim costs without anything reading it.
- ``noop-md``: a pass-through server interceptor, the client of ``gorums-md``:
  what grpc.aio's interceptor machinery costs before any interceptor works.
- ``bare+noop-ci``: bare server, client with a do-nothing grpc.aio client
  interceptor (what grpc.aio's client interceptor machinery costs by itself).
- ``otel-noop``: OpenTelemetry's grpc.aio server interceptor, no SDK (the
  default no-op tracer).
- ``otel-sdk``: the same with the SDK: a ``TracerProvider`` with a
  ``BatchSpanProcessor`` feeding an exporter that drops spans.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import grpc
from grpc import aio

from bench._common import (
    CHAT_PATH,
    PAYLOAD,
    SAY_PATH,
    Child,
    Payload,
    add_nice_option,
    announce,
    apply_nice,
    bench_handler,
    machine,
    median,
    own_cpu,
    print_table,
    say_stub,
    spawn,
    spread,
    stop_all,
    until_stdin_closes,
    worktree,
)

CLIENT_CLAIM: Final = "127.0.0.1:7"
"""The address the benchmark client claims (it need not listen)."""

INFLIGHT: Final = 64
WINDOW: Final = 64
STABLE: Final = 0.10
"""A pair counts only if the bare runs around it differ by at most this fraction
(the machine's other load changed less than that while the variant ran)."""


@dataclass(frozen=True)
class Variant:
    name: str
    server: str
    client: str  # "plain", "identity", "metadata", "noop"


VARIANTS: Final = (
    Variant("bare", "bare", "plain"),
    Variant("gorums", "gorums", "identity"),
    Variant("gorums-md", "gorums", "metadata"),
    Variant("gorums-external", "gorums", "plain"),
    Variant("bare-md", "bare", "metadata"),
    Variant("noop-md", "noop", "metadata"),
    Variant("bare+noop-ci", "bare", "noop"),
    Variant("otel-noop", "otel-noop", "plain"),
    Variant("otel-sdk", "otel-sdk", "plain"),
)


# ---- server side --------------------------------------------------------------


class _PassThrough(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Does nothing: what grpc.aio's interceptor machinery costs by itself."""

    async def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        return await continuation(details)


def _server_interceptors(kind: str, port: int) -> list[Any]:
    if kind == "bare":
        return []
    if kind == "noop":
        return [_PassThrough()]
    if kind == "gorums":
        from gorums_mw import InboundManager, with_nodes
        from gorums_mw.interceptors import PeerIdentityInterceptor

        nodes = with_nodes({1: f"127.0.0.1:{port}", 2: CLIENT_CLAIM})
        return [PeerIdentityInterceptor(InboundManager(1, nodes))]
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    if kind == "otel-noop":
        return [aio_server_interceptor()]  # type: ignore[no-untyped-call]
    if kind == "otel-sdk":
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Drop(SpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        return [aio_server_interceptor(tracer_provider=provider)]  # type: ignore[no-untyped-call]
    raise ValueError(f"unknown server kind {kind!r}")


async def serve(kind: str) -> None:
    from gorums_mw.testing import free_ports

    (port,) = free_ports(1)
    server = aio.server(interceptors=_server_interceptors(kind, port))
    server.add_generic_rpc_handlers((bench_handler(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    announce({"port": port})
    await until_stdin_closes()
    await server.stop(None)


# ---- client side --------------------------------------------------------------


class _NoopUnary(aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(client_call_details, request)


class _NoopStream(aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(client_call_details, request_iterator)


def _channel(port: int, client: str) -> aio.Channel:
    target = f"127.0.0.1:{port}"
    if client == "identity":
        from gorums_mw.interceptors import ClientIdentityInterceptor

        return aio.insecure_channel(target, interceptors=ClientIdentityInterceptor(CLIENT_CLAIM))
    if client == "noop":
        noop: list[Any] = [_NoopUnary(), _NoopStream()]
        return aio.insecure_channel(target, interceptors=noop)
    return aio.insecure_channel(target)


@dataclass
class Sample:
    rate: float
    server_us: float  # server CPU per call/message
    client_us: float  # client CPU per call/message


@dataclass
class Results:
    """Per workload: each variant's samples paired with the mean of the bare
    runs just before and after it."""

    pairs: dict[str, dict[str, list[tuple[Sample, Sample]]]] = field(default_factory=dict)
    all_pairs: dict[str, dict[str, list[tuple[Sample, Sample]]]] = field(default_factory=dict)
    bare: dict[str, list[Sample]] = field(default_factory=dict)

    def add(self, workload: str, name: str, sample: Sample, before: Sample, after: Sample) -> None:
        mean = Sample(
            (before.rate + after.rate) / 2,
            (before.server_us + after.server_us) / 2,
            (before.client_us + after.client_us) / 2,
        )
        self.bare.setdefault(workload, []).append(after)
        self.all_pairs.setdefault(workload, {}).setdefault(name, []).append((sample, mean))
        if abs(before.rate - after.rate) <= STABLE * mean.rate:
            self.pairs.setdefault(workload, {}).setdefault(name, []).append((sample, mean))

    def kept(self, workload: str, name: str) -> list[tuple[Sample, Sample]]:
        """The pairs with a steady bare bracket (all pairs if none was steady)."""
        return self.pairs.get(workload, {}).get(name) or self.all_pairs[workload][name]


async def _measure(child: Child, count: Callable[[], int], warmup: float, seconds: float) -> Sample:
    await asyncio.sleep(warmup)
    loop = asyncio.get_running_loop()
    n0, s0, c0, t0 = count(), child.cpu(), own_cpu(), loop.time()
    await asyncio.sleep(seconds)
    n1, s1, c1, t1 = count(), child.cpu(), own_cpu(), loop.time()
    n = max(1, n1 - n0)
    return Sample(n / (t1 - t0), (s1 - s0) / n * 1e6, (c1 - c0) / n * 1e6)


async def unary_round(
    channel: aio.Channel, client: str, child: Child, warmup: float, seconds: float
) -> Sample:
    metadata = (("gorums-addr", CLIENT_CLAIM),) if client == "metadata" else ()
    call = say_stub(channel, metadata)
    done = 0
    running = True

    async def worker() -> None:
        nonlocal done
        while running:
            await call(PAYLOAD)
            done += 1

    workers = [asyncio.create_task(worker()) for _ in range(INFLIGHT)]
    try:
        return await _measure(child, lambda: done, warmup, seconds)
    finally:
        running = False
        await asyncio.gather(*workers)


async def bidi_round(
    channel: aio.Channel, client: str, child: Child, warmup: float, seconds: float
) -> Sample:
    metadata = (("gorums-addr", CLIENT_CLAIM),) if client == "metadata" else ()
    open_chat = channel.stream_stream(
        CHAT_PATH,
        request_serializer=Payload.SerializeToString,
        response_deserializer=Payload.FromString,
    )
    call: aio.StreamStreamCall[Payload, Payload] = open_chat(None, metadata=metadata)
    slots = asyncio.Semaphore(WINDOW)
    received = 0
    running = True

    async def writer() -> None:
        while running:
            await slots.acquire()
            await call.write(PAYLOAD)
        await call.done_writing()

    async def reader() -> None:
        nonlocal received
        while True:
            reply = await call.read()
            if not isinstance(reply, Payload):
                return
            received += 1
            slots.release()

    tasks = [asyncio.create_task(writer()), asyncio.create_task(reader())]
    try:
        return await _measure(child, lambda: received, warmup, seconds)
    finally:
        running = False
        slots.release()
        await asyncio.gather(*tasks)


# ---- in process: the interceptor's own per-call work ------------------------------


class _Metadatum(NamedTuple):
    key: str
    value: str


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str, metadata: tuple[_Metadatum, ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class _FakeContext:
    """What the interceptors read from a grpc context (metadata is prebuilt,
    so OpenTelemetry's per-call ``invocation_metadata()`` rebuilds are not counted)."""

    def __init__(self, metadata: tuple[_Metadatum, ...]) -> None:
        self._metadata = metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def invocation_metadata(self) -> tuple[_Metadatum, ...]:
        return self._metadata


async def _messages(count: int) -> AsyncIterator[Payload]:
    for _ in range(count):
        yield PAYLOAD


async def _per_call_ns(interceptor: Any, metadata: tuple[_Metadatum, ...], calls: int) -> float:
    handler = bench_handler().service(_Details(SAY_PATH, metadata))
    assert handler is not None

    async def continuation(details: grpc.HandlerCallDetails) -> Any:
        return handler

    details = _Details(SAY_PATH, metadata)
    context = _FakeContext(metadata)
    start = time.perf_counter_ns()
    for _ in range(calls):
        if interceptor is None:
            chosen = await continuation(details)
        else:
            chosen = await interceptor.intercept_service(continuation, details)
        await chosen.unary_unary(PAYLOAD, context)
    return (time.perf_counter_ns() - start) / calls


async def _per_message_ns(interceptor: Any, metadata: tuple[_Metadatum, ...], count: int) -> float:
    handler = bench_handler().service(_Details(CHAT_PATH, metadata))
    assert handler is not None

    async def continuation(details: grpc.HandlerCallDetails) -> Any:
        return handler

    details = _Details(CHAT_PATH, metadata)
    chosen: Any = handler
    if interceptor is not None:
        chosen = await interceptor.intercept_service(continuation, details)
    start = time.perf_counter_ns()
    async for _ in chosen.stream_stream(_messages(count), _FakeContext(metadata)):
        pass
    return (time.perf_counter_ns() - start) / count


async def in_process(rounds: int) -> dict[str, tuple[float, float]]:
    """Median extra ns per unary call and per stream message, above no interceptor."""
    user_agent = _Metadatum("user-agent", "grpc-python-asyncio/1.85")
    claim = _Metadatum("gorums-addr", CLIENT_CLAIM)
    setups: dict[str, tuple[Any, tuple[_Metadatum, ...]]] = {
        "bare": (None, (user_agent,)),
        "gorums": (_server_interceptors("gorums", 1)[0], (user_agent, claim)),
        "gorums, no claim (external caller)": (
            _server_interceptors("gorums", 1)[0],
            (user_agent,),
        ),
        "otel-noop": (_server_interceptors("otel-noop", 1)[0], (user_agent,)),
        "otel-sdk": (_server_interceptors("otel-sdk", 1)[0], (user_agent,)),
    }

    async def measure() -> dict[str, tuple[list[float], list[float]]]:
        samples: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in setups}
        names = list(setups)
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                interceptor, metadata = setups[name]
                samples[name][0].append(await _per_call_ns(interceptor, metadata, 20_000))
                samples[name][1].append(await _per_message_ns(interceptor, metadata, 50_000))
        return samples

    samples = await measure()
    base_call = median(samples["bare"][0])
    base_msg = median(samples["bare"][1])
    return {
        name: (median(calls) - base_call, median(messages) - base_msg)
        for name, (calls, messages) in samples.items()
        if name != "bare"
    }


async def drive(
    rounds: int, seconds: float, only: Sequence[str], pin: bool, base: Path | None
) -> None:
    extra = await in_process(rounds)
    variants = [v for v in VARIANTS if not only or v.name in only or v.name == "bare"]
    if base is not None:
        variants.append(Variant("gorums-md@base", "gorums@base", "metadata"))
    kinds = sorted({v.server for v in variants})
    children = {
        kind: spawn(
            kind,
            "bench.interceptor",
            "--serve",
            kind.removesuffix("@base"),
            tree=base if kind.endswith("@base") else None,
        )
        for kind in kinds
    }
    if pin:
        for child in children.values():
            os.sched_setaffinity(child.proc.pid, {0})
        os.sched_setaffinity(0, {1})
    try:
        channels = {v.name: _channel(children[v.server].info["port"], v.client) for v in variants}
        results = Results()
        warmup = min(0.1, seconds / 3)
        bare, others = variants[0], variants[1:]

        async def run(variant: Variant) -> tuple[Sample, Sample]:
            child, channel = children[variant.server], channels[variant.name]
            unary = await unary_round(channel, variant.client, child, warmup, seconds)
            bidi = await bidi_round(channel, variant.client, child, warmup, seconds)
            return unary, bidi

        for index in range(rounds):
            # bare, v1, bare, v2, ..., vn, bare: each variant is bracketed by
            # bare runs, its ratio taken against their mean (slow drifts cancel).
            shift = index % len(others)
            order = others[shift:] + others[:shift]
            before = await run(bare)
            for variant in order:
                unary, bidi = await run(variant)
                after = await run(bare)
                results.add("unary", variant.name, unary, before[0], after[0])
                results.add("bidi", variant.name, bidi, before[1], after[1])
                before = after
            print(f"round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
        for channel in channels.values():
            await channel.close(None)
    finally:
        await stop_all(children.values())
    report(results, [v.name for v in others], extra)


def report(results: Results, names: Sequence[str], extra: dict[str, tuple[float, float]]) -> None:
    print(machine())
    for title, workload, unit in (
        (f"Unary, {INFLIGHT} calls in flight", "unary", "call"),
        (f"Bidi stream, one stream, window {WINDOW} messages", "bidi", "msg"),
    ):
        rows: list[list[object]] = []
        bare = results.bare[workload]
        rows.append(
            [
                "bare",
                median([s.rate for s in bare]),
                1.0,
                "-",
                median([s.server_us for s in bare]),
                1.0,
                median([s.client_us for s in bare]),
                "-",
            ]
        )
        for name in names:
            pairs = results.kept(workload, name)
            ratios = [s.rate / b.rate for s, b in pairs]
            cpu_ratios = [s.server_us / b.server_us for s, b in pairs]
            rows.append(
                [
                    name,
                    median([s.rate for s, _ in pairs]),
                    median(ratios),
                    spread(ratios),
                    median([s.server_us for s, _ in pairs]),
                    median(cpu_ratios),
                    median([s.client_us for s, _ in pairs]),
                    f"{len(pairs)}/{len(results.all_pairs[workload][name])}",
                ]
            )
        print_table(
            title,
            [
                "variant",
                f"{unit}s/s",
                "x bare",
                "x bare min-max",
                f"server CPU µs/{unit}",
                "server CPU x bare",
                f"client CPU µs/{unit}",
                "steady pairs",
            ],
            rows,
        )
    bare_call = median([s.server_us for s in results.bare["unary"]]) * 1e3
    bare_msg = median([s.server_us for s in results.bare["bidi"]]) * 1e3
    print_table(
        "In process, no network: the interceptor's own work (median ns above no interceptor),"
        " and the throughput it leaves a CPU-bound server (bare server CPU per call/message"
        " from the runs above)",
        [
            "variant",
            "ns per unary call",
            "unary x bare (CPU bound)",
            "ns per stream message",
            "stream x bare (CPU bound)",
        ],
        [
            [
                name,
                call_ns,
                bare_call / (bare_call + call_ns),
                msg_ns,
                bare_msg / (bare_msg + msg_ns),
            ]
            for name, (call_ns, msg_ns) in extra.items()
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=0.3, help="measured seconds per run")
    parser.add_argument("--only", nargs="*", default=[], help="variants to run (and bare)")
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, client on CPU 1")
    parser.add_argument("--base", help="also run the gorums-md server of this git revision")
    add_nice_option(parser)
    args = parser.parse_args(argv)
    apply_nice(args.nice)
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    if args.base is None:
        asyncio.run(drive(args.rounds, args.seconds, args.only, args.pin, None))
        return
    with worktree(args.base) as base:
        asyncio.run(drive(args.rounds, args.seconds, args.only, args.pin, base))


if __name__ == "__main__":
    main()
