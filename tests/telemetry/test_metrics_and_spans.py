"""Metrics and spans (SDK in-memory reader and exporter), as docs/how-to/observability.md lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc import aio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import SpanKind

from gorums_mw import GORUMS_ADDR_KEY
from gorums_mw.testing import LocalReplicas
from tests import echo_pb2
from tests._echo import setup
from tests.conftest import Spans, points

pytestmark = pytest.mark.usefixtures("both_framings")

SAY = "echo.Echo.Say"


@pytest.fixture
def metrics() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


async def test_metrics_of_membership_and_calls(metrics: Any) -> None:
    provider, reader = metrics
    async with LocalReplicas(3, setup, meter_provider=provider) as replicas:
        await replicas.wait_full()
        config = replicas[1].config()
        await config.quorum_call(SAY, echo_pb2.EchoRequest(), echo_pb2.EchoReply, quorum=3)
        await config.node(2).rpc(SAY, echo_pb2.EchoRequest(), echo_pb2.EchoReply, timeout=5)
        await config.multicast(SAY, echo_pb2.EchoRequest())
        async with aio.insecure_channel(replicas[1].address) as channel:  # a refused claim
            with pytest.raises(aio.AioRpcError):
                await channel.unary_unary("/echo.Echo/Say")(
                    b"", metadata=((GORUMS_ADDR_KEY, "10.9.9.9:1"),), timeout=5
                )
        found = points(reader)

    sizes = {p.attributes["gorums.node.id"]: p.value for p in found["gorums.config.size"]}
    assert sizes == {1: 2, 2: 2, 3: 2}  # peers, not counting itself
    assert {p.attributes["gorums.node.id"] for p in found["gorums.clients"]} == {1, 2, 3}
    assert all(p.value >= 0 for p in found["gorums.stream.buffered"])
    registrations = sum(p.value for p in found["gorums.peer.registrations"])
    assert registrations >= 3  # one inbound stream per pair at least
    assert sum(p.value for p in found["gorums.peer.tiebreaks"]) >= 1
    (rejected,) = found["gorums.peer.rejections"]
    assert rejected.attributes["error.type"] == "PeerAddressMismatchError" and rejected.value == 1
    kinds = {
        (p.attributes["rpc.method"], p.attributes["gorums.call.kind"]): p.count
        for p in found["gorums.call.duration"]
    }
    assert kinds == {(SAY, "quorum_call"): 1, (SAY, "rpc"): 1, (SAY, "multicast"): 1}
    (replies,) = found["gorums.quorum_call.replies"]
    assert replies.count == 1 and replies.sum == 3
    latency_peers = {p.attributes["gorums.peer.id"] for p in found["gorums.node.latency"]}
    assert latency_peers == {1, 2, 3}


async def test_a_decision_links_to_the_callers_trace(spans: Spans) -> None:
    async with LocalReplicas(1, setup, tracer_provider=spans.provider) as replicas:
        tracer = spans.provider.get_tracer("test")
        with tracer.start_as_current_span("caller") as caller:
            carrier = {"traceparent": _traceparent(caller)}
            async with aio.insecure_channel(replicas[1].address) as channel:
                with pytest.raises(aio.AioRpcError) as info:
                    await channel.unary_unary("/echo.Echo/Say")(
                        b"",
                        metadata=((GORUMS_ADDR_KEY, "10.9.9.9:1"), *carrier.items()),
                        timeout=5,
                    )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    (reject,) = spans.named("gorums.peer.reject")
    assert [link.context.span_id for link in reject.links] == [caller.get_span_context().span_id]
    assert reject.kind == SpanKind.INTERNAL


async def test_multicast_spans_count_what_was_sent(spans: Spans) -> None:
    async with LocalReplicas(2, setup, tracer_provider=spans.provider) as replicas:
        await replicas.wait_full()
        await replicas[1].config().multicast(SAY, echo_pb2.EchoRequest())
    (multicast,) = spans.named("gorums.multicast")
    assert multicast.attributes is not None
    assert multicast.attributes["gorums.sent"] == 2
    assert "gorums.replies" not in multicast.attributes


def _traceparent(span: Any) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
