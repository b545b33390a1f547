"""Traces and metrics through a real OTLP/gRPC pipeline: SDK → OTLP exporter → a receiver.

The receiver is opentelemetry-proto's collector service on loopback, the
same protocol a collector or a tracing backend speaks. It runs on grpc's
threaded server: the SDK exports synchronously, from the replicas' loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from gorums_mw.testing import LocalReplicas
from tests import echo_pb2
from tests._echo import setup

SAY = "echo.Echo.Say"


class Receiver(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """An OTLP/gRPC receiver that keeps what it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.metrics: set[str] = set()

    def Export(self, request: Any, context: Any) -> Any:  # type: ignore[override]
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
            return trace_service_pb2.ExportTraceServiceResponse()
        for resource in request.resource_metrics:
            for scope in resource.scope_metrics:
                self.metrics.update(metric.name for metric in scope.metrics)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def attribute(span: Span, key: str) -> Any:
    for kv in span.attributes:
        if kv.key == key:
            value = kv.value
            return value.int_value if value.HasField("int_value") else value.string_value
    return None


async def test_a_quorum_call_is_one_trace_with_client_server_edges_between_replicas(
    receiver: tuple[Receiver, str],
) -> None:
    servicer, endpoint = receiver
    resource = Resource.create({"service.name": "gorums-e2e"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=60_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])

    try:
        async with LocalReplicas(
            3, setup, tracer_provider=tracer_provider, meter_provider=meter_provider
        ) as replicas:
            await replicas.wait_full()
            tracer = tracer_provider.get_tracer("test")
            with tracer.start_as_current_span("client") as root:
                await (
                    replicas[1]
                    .config()
                    .quorum_call(
                        SAY, echo_pb2.EchoRequest(text="x"), echo_pb2.EchoReply, quorum=3, timeout=5
                    )
                )
            trace_id = root.get_span_context().trace_id.to_bytes(16, "big")
            assert tracer_provider.force_flush(10_000)
            assert meter_provider.force_flush(10_000)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    in_trace = [span for span in servicer.spans if span.trace_id == trace_id]
    by_id = {span.span_id: span for span in in_trace}
    quorum = next(span for span in in_trace if span.name == "gorums.quorum_call")
    assert attribute(quorum, "gorums.node.id") == 1
    clients = [s for s in in_trace if s.kind == Span.SPAN_KIND_CLIENT]
    servers = [s for s in in_trace if s.kind == Span.SPAN_KIND_SERVER]
    assert len(clients) == len(servers) == 3
    assert all(by_id[c.parent_span_id] is quorum for c in clients)
    edges = set()
    for server in servers:
        client = by_id[server.parent_span_id]  # every SERVER span continues a CLIENT span
        assert (
            client.kind == Span.SPAN_KIND_CLIENT and client.name == server.name == "echo.Echo/Say"
        )
        edges.add((attribute(client, "gorums.node.id"), attribute(server, "gorums.node.id")))
        assert attribute(server, "rpc.grpc.status_code") == 0
    assert edges == {(1, 1), (1, 2), (1, 3)}  # replica 1 called every replica, itself included
    decisions = {span.name for span in servicer.spans}
    assert {"gorums.peer.register", "gorums.peer.tiebreak"} <= decisions
    assert {
        "gorums.call.duration",
        "gorums.node.latency",
        "gorums.quorum_call.replies",
        "gorums.peer.registrations",
        "gorums.config.size",
    } <= servicer.metrics
