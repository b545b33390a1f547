"""What telemetry and call options cost: no SDK, SDK with the sampler off, SDK on.

    .venv/bin/python -m bench.telemetry [--rounds 5] [--seconds 0.5]

One process, three replicas (``LocalReplicas``) per variant, on loopback.
For each variant it measures

- ``quorum``: ``Configuration.quorum_call`` (majority of 3) with 1 and 64
  calls in flight: calls/s;
- ``identified``: a unary call carrying ``gorums-addr`` through
  ``PeerIdentityInterceptor`` (the per-RPC identification path): calls/s.

Variants: ``no SDK`` (opentelemetry-api only: non-recording spans, no-op
instruments), ``SDK traces, sampler off`` (an SDK ``TracerProvider`` with
``ALWAYS_OFF``, no-op instruments), ``SDK metrics`` (no-op tracer, an SDK
``MeterProvider`` with a reader), ``SDK, sampler off`` (both of those),
``SDK on`` (every span sampled and exported to a discarding exporter, a
metric reader), and ``interceptor`` (no SDK, plus one pass-through call
interceptor, to show what an unused option costs: nothing, and a used one).
Rounds rotate the variants; ratios are against ``no SDK`` in the same round
(median over rounds). Client and servers share one process and two cores,
so only the ratios mean much.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, Final

from grpc import aio
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from bench._common import (
    PAYLOAD,
    SAY_METHOD,
    Payload,
    bench_handler,
    machine,
    median,
    print_table,
    say_stub,
)
from bench._versus_child import rate
from bench.versus import WHATS
from gorums_mw import GORUMS_ADDR_KEY, CallInfo, Configuration, NodeReply, System
from gorums_mw.testing import LocalReplicas

VARIANTS: Final = (
    "no SDK",
    "SDK traces, sampler off",
    "SDK metrics",
    "SDK, sampler off",
    "SDK on",
    "interceptor",
)
CONCURRENCY: Final = (1, 64)


class Discard(SpanExporter):
    """Exports spans nowhere (what the SDK does before the network)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def providers(variant: str) -> tuple[trace.TracerProvider, metrics.MeterProvider]:
    tracer_provider: trace.TracerProvider = trace.NoOpTracerProvider()
    meter_provider: metrics.MeterProvider = metrics.NoOpMeterProvider()
    if variant in ("SDK traces, sampler off", "SDK, sampler off", "SDK on"):
        sdk_tracer = TracerProvider(sampler=ALWAYS_ON if variant == "SDK on" else ALWAYS_OFF)
        sdk_tracer.add_span_processor(BatchSpanProcessor(Discard()))
        tracer_provider = sdk_tracer
    if variant in ("SDK metrics", "SDK, sampler off", "SDK on"):
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider


def setup(system: System) -> None:
    system.handlers.add_generic_rpc_handlers((bench_handler(),))
    system.server.add_generic_rpc_handlers((bench_handler(),))


async def passthrough(
    call: CallInfo[Any], replies: AsyncIterator[NodeReply[Payload]]
) -> AsyncIterator[NodeReply[Payload]]:
    async for answer in replies:
        yield answer


async def measure(variant: str, seconds: float) -> dict[str, float]:
    tracer_provider, meter_provider = providers(variant)
    replicas = LocalReplicas(
        3, setup, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    async with replicas:
        await replicas.wait_full()
        config: Configuration = replicas[1].config()
        options: dict[str, Any] = (
            {"interceptors": [passthrough]} if variant == "interceptor" else {}
        )

        def quorum() -> Awaitable[object]:
            return config.quorum_call(SAY_METHOD, PAYLOAD, Payload, **options)

        found = {f"quorum x{c}": await rate(quorum, c, seconds) for c in CONCURRENCY}
        async with aio.insecure_channel(replicas[1].address) as channel:
            identified = say_stub(channel, ((GORUMS_ADDR_KEY, replicas[2].address),))
            found["identified x64"] = await rate(lambda: identified(PAYLOAD), 64, seconds)
    for provider in (tracer_provider, meter_provider):
        shutdown = getattr(provider, "shutdown", None)
        if callable(shutdown):
            shutdown()
    return found


async def drive(rounds: int, seconds: float) -> None:
    samples: dict[tuple[str, str], list[float]] = {}
    for index in range(rounds):
        order = VARIANTS[index % len(VARIANTS) :] + VARIANTS[: index % len(VARIANTS)]
        found = {variant: await measure(variant, seconds) for variant in order}
        for variant, rates in found.items():
            for what, value in rates.items():
                samples.setdefault((variant, what), []).append(value / found["no SDK"][what])
                samples.setdefault((variant, what + " calls/s"), []).append(value)
        print(f"round {index + 1}/{rounds} done", file=sys.stderr, flush=True)

    def cell(variant: str, what: str) -> str:
        ratio = median(samples[(variant, what)])
        return f"{ratio:.2f} ({median(samples[(variant, what + ' calls/s')]):.0f}/s)"

    rows = [[variant] + [cell(variant, what) for what in WHATS] for variant in VARIANTS]
    print_table(
        f"Telemetry and call-option cost, ratio to no SDK (median of {rounds} rounds); {machine()}",
        ["variant", *WHATS],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args(argv)
    asyncio.run(drive(args.rounds, args.seconds))


if __name__ == "__main__":
    main()
