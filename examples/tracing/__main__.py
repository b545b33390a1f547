"""The spans of a run of the storage example, printed by the SDK's console exporter.

Three replicas start (``gorums.peer.register``, and ``gorums.peer.tiebreak``
where two replicas dialed each other), a client span wraps a write and a
read sent to replica 2, whose handlers run nested quorum calls
(``gorums.rpc`` → ``gorums.quorum_call``, one trace across replicas), and
replica 3 stops (``gorums.peer.unregister``). Each span is one line:
name, trace, span and parent IDs, attributes.

Run it::

    python -m examples.tracing
    python -m examples.tracing --html out.html   # also a waterfall page, no backend needed
    python -m examples.tracing --otlp http://localhost:4317   # also to a collector

``--otlp`` needs the optional exporter: ``pip install 'gorums-mw[otlp]'``.
The OpenTelemetry SDK is an example dependency; gorums-mw itself needs only
opentelemetry-api (without an SDK its spans cost almost nothing).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc loads: no transport chatter

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from examples import storage_pb2, storage_pb2_grpc
from examples.storage.replica import StorageReplica, Store
from examples.storage_gorums import StorageNode
from examples.tracing.waterfall import render
from gorums_mw import CallError, System
from gorums_mw.testing import LocalReplicas


def one_line(span: ReadableSpan) -> str:
    """A span as one line: name, IDs, attributes (the default is pretty JSON)."""
    context = span.get_span_context()
    parent = format(span.parent.span_id, "016x") if span.parent is not None else "-" * 16
    attributes = " ".join(f"{key}={value!s}" for key, value in (span.attributes or {}).items())
    trace_id = f"{context.trace_id:032x}"[:8] if context is not None else "?"
    span_id = f"{context.span_id:016x}" if context is not None else "?"
    return f"span {span.name:<24} trace={trace_id} span={span_id} parent={parent} {attributes}\n"


def tracer_provider(otlp: str | None, kept: InMemorySpanExporter | None = None) -> TracerProvider:
    """An SDK provider printing to the console, and exporting to ``otlp`` if given."""
    provider = TracerProvider(resource=Resource.create({"service.name": "gorums-storage"}))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
    if kept is not None:
        provider.add_span_processor(SimpleSpanProcessor(kept))
    if otlp is not None:
        # The optional extra: pip install 'gorums-mw[otlp]'.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp)))
    return provider


def setup(system: System) -> None:
    """Give each replica the storage servicer."""
    replica = StorageReplica(system, Store())
    system.add_servicer(storage_pb2_grpc.add_StorageServicer_to_server, replica)


async def call(rpc: Callable[[], Awaitable[storage_pb2.Value]]) -> storage_pb2.Value:
    """The reply of ``rpc()``, which is tried again on ``UNAVAILABLE``.

    Just after start-up two replicas may still be settling which of their
    two streams to keep; a call on the one being closed fails with
    ``UNAVAILABLE`` and goes again over the one kept.
    """
    for attempt in range(3):
        try:
            return await rpc()
        except CallError as exc:
            if exc.code != grpc.StatusCode.UNAVAILABLE or attempt == 2:
                raise
    raise AssertionError("unreachable")


async def run(provider: TracerProvider) -> int:
    """Start three replicas, write and read through replica 2, stop replica 3."""
    tracer = provider.get_tracer("examples.tracing")
    replicas = LocalReplicas(3, setup, tracer_provider=provider)
    # Started 3, 2, 1: each pair dials both ways, so each side records a tiebreak.
    await replicas.start([3, 2, 1])
    try:
        await replicas.wait_full()
        print("-- 3 replicas connected; client.write and client.read through replica 2 --")
        coordinator = StorageNode(replicas[1].config().node(2))
        with tracer.start_as_current_span("client.write"):
            write = storage_pb2.WriteRequest(key="greeting", value="hello")
            await call(lambda: coordinator.WriteQuorum(write, timeout=5))
        with tracer.start_as_current_span("client.read"):
            read = storage_pb2.ReadRequest(key="greeting")
            value = await call(lambda: coordinator.ReadQuorum(read, timeout=5))
        print(f"-- read {value.value!r}; stopping replica 3 --")
        await replicas.stop(3)
        await replicas[1].wait_for_config(lambda c: c.ids == (1, 2), timeout=5)
        print("-- shutting down --")
    finally:
        await replicas.close()
    return 0 if value.value == "hello" else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and run; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.tracing",
        description="The spans of a storage run, on the console (and to an OTLP collector).",
    )
    parser.add_argument(
        "--otlp", metavar="ENDPOINT", help="also send spans to this OTLP/gRPC collector"
    )
    parser.add_argument(
        "--html", metavar="PATH", help="also write a waterfall of the traces to this HTML file"
    )
    args = parser.parse_args(argv)
    kept = InMemorySpanExporter() if args.html else None
    try:
        provider = tracer_provider(args.otlp, kept)
    except ImportError as exc:
        parser.error(f"--otlp needs the otlp extra (pip install 'gorums-mw[otlp]'): {exc}")
    try:
        code = asyncio.run(run(provider))
    finally:
        provider.shutdown()
    if kept is not None:
        page = render(kept.get_finished_spans(), "gorums-mw: a storage run on 3 replicas")
        Path(args.html).write_text(page, encoding="utf-8")
        print(f"-- wrote the waterfall of {len(kept.get_finished_spans())} spans to {args.html} --")
    return code


if __name__ == "__main__":
    sys.exit(main())
