"""Symmetric replicas over real loopback servers: config, tiebreak, calls."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import grpc
import pytest
from opentelemetry.trace import SpanKind

from gorums_mw import CallError, QuorumCallError, System, current_peer, with_nodes
from gorums_mw._inbound.manager import wiring_of
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw.testing import LocalReplicas
from tests import echo_pb2, echo_pb2_grpc
from tests.conftest import Spans

pytestmark = pytest.mark.usefixtures("both_framings")

SAY = "echo.Echo.Say"
Request = echo_pb2.EchoRequest
Reply = echo_pb2.EchoReply


class Echo(echo_pb2_grpc.EchoServicer):
    """Say answers with who answered, who asked, and over which stream.

    ``number`` < 0 blocks until ``release`` is set; ``number`` == 13 raises.
    """

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.release = asyncio.Event()
        self.blocked = asyncio.Event()
        self.received: list[str] = []
        self.delivered = asyncio.Event()

    async def Say(self, request: Any, context: Any) -> Reply:
        self.received.append(request.text)
        self.delivered.set()
        if request.number < 0:
            self.blocked.set()
            await self.release.wait()
        if request.number == 13:
            raise ValueError("unlucky")
        # The peer string says which stream served us: the dialed address for a
        # stream this node opened, grpc's "ipv4:..." for one it accepted.
        return Reply(text=context.peer(), number=current_peer().id, node_id=self.node_id)


def setup_echo(servicers: dict[int, Echo]) -> Any:
    def setup(system: System) -> None:
        servicer = servicers[system.id] = Echo(system.id)
        system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, servicer)

    return setup


def settled(system: System) -> bool:
    """Every peer is reached over the stream the lower ID of the pair dialed."""
    for node in system.config():
        if node.id == system.id:
            continue
        stream = node.channel
        if not isinstance(stream, StreamEndpoint) or stream.accepted != (node.id < system.id):
            return False
    return True


async def assert_one_stream_per_pair(replicas: LocalReplicas) -> None:
    """Both sides of every pair use the stream the lower ID dialed."""
    for system in replicas:
        await system.wait_for_config(lambda _, s=system: settled(s), timeout=10)  # type: ignore[misc]
    for low in replicas:
        for high in replicas:
            if low.id >= high.id:
                continue
            # Calls low → high arrive at high over a stream high accepted.
            reply = await low.config().node(high.id).rpc(SAY, Request(), Reply, timeout=5)
            assert reply.node_id == high.id and reply.number == low.id
            assert reply.text.startswith(("ipv4:", "ipv6:")), (low.id, high.id, reply.text)
            # Calls high → low arrive at low over the stream low dialed.
            reply = await high.config().node(low.id).rpc(SAY, Request(), Reply, timeout=5)
            assert reply.node_id == low.id and reply.number == high.id
            assert reply.text == high.address, (low.id, high.id, reply.text)
            # And the stream high dialed to low is gone on both sides.
            assert low.id not in high.manager.stats().outbound
            inbound_at_low = wiring_of(low.manager).inbound_stream(high.id)
            if inbound_at_low is not None:
                assert isinstance(inbound_at_low, StreamEndpoint)
                await asyncio.wait_for(inbound_at_low.wait_closed(), 5)


@pytest.mark.parametrize("size", [3, 5])
async def test_replicas_started_together_reach_full_config(size: int) -> None:
    servicers: dict[int, Echo] = {}
    async with LocalReplicas(size, setup_echo(servicers)) as replicas:
        await replicas.wait_full()
        for system in replicas:
            assert system.config().ids == tuple(range(1, size + 1))
        await assert_one_stream_per_pair(replicas)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_replicas_started_in_random_order(seed: int) -> None:
    rng = random.Random(seed)
    order = list(range(1, 6))
    rng.shuffle(order)
    servicers: dict[int, Echo] = {}
    replicas = LocalReplicas(5, setup_echo(servicers))
    try:
        for node_id in order:
            await replicas.start([node_id])
            await asyncio.sleep(rng.random() * 0.05)  # stagger starts, not synchronization
        await replicas.wait_full()
        await assert_one_stream_per_pair(replicas)
    finally:
        await replicas.close()


async def test_quorum_call_from_every_replica() -> None:
    servicers: dict[int, Echo] = {}
    async with LocalReplicas(3, setup_echo(servicers)) as replicas:
        await replicas.wait_full()
        for system in replicas:
            replies = await system.config().quorum_call(SAY, Request(text="q"), Reply, timeout=5)
            assert len(replies) >= 2
            assert all(reply.node_id == node_id for node_id, reply in replies.items())
            everyone = await system.config().quorum_call(SAY, Request(), Reply, quorum=3, timeout=5)
            assert sorted(everyone) == [1, 2, 3]
            # A call to itself is dispatched in process.
            assert everyone[system.id].text == "local"


async def test_multicast_and_replies_iterator() -> None:
    servicers: dict[int, Echo] = {}
    async with LocalReplicas(3, setup_echo(servicers)) as replicas:
        await replicas.wait_full()
        sent = await replicas[1].config().multicast(SAY, Request(text="hello all"))
        assert sent == (1, 2, 3)
        for servicer in servicers.values():
            await asyncio.wait_for(servicer.delivered.wait(), 5)
            assert servicer.received == ["hello all"]
        seen = []
        async for answer in replicas[2].config().replies(SAY, Request(), Reply, timeout=5):
            assert answer.error is None and answer.value is not None
            seen.append(answer.node_id)
            if len(seen) == 2:
                break  # early exit abandons the rest
        assert len(seen) == 2


async def test_handler_error_and_unknown_method_keep_stream_up() -> None:
    servicers: dict[int, Echo] = {}
    async with LocalReplicas(2, setup_echo(servicers)) as replicas:
        await replicas.wait_full()
        node = replicas[1].config().node(2)
        with pytest.raises(CallError) as info:
            await node.rpc(SAY, Request(number=13), Reply, timeout=5)
        assert info.value.code == grpc.StatusCode.UNKNOWN and "unlucky" in info.value.details
        with pytest.raises(ValueError, match="no method 'Nope'"):  # Echo is known here
            await node.rpc("echo.Echo.Nope", Request(), Reply, timeout=5)
        with pytest.raises(CallError) as info:  # a service only the peer might know
            await node.rpc("elsewhere.Echo.Nope", Request(), Reply, timeout=5)
        assert info.value.code == grpc.StatusCode.UNIMPLEMENTED
        reply = await node.rpc(SAY, Request(), Reply, timeout=5)
        assert reply.node_id == 2
        assert replicas[1].config().ids == (1, 2)


async def test_quorum_call_reports_each_failure() -> None:
    servicers: dict[int, Echo] = {}
    async with LocalReplicas(3, setup_echo(servicers)) as replicas:
        await replicas.wait_full()
        with pytest.raises(QuorumCallError) as info:
            await replicas[1].config().quorum_call(SAY, Request(number=13), Reply, timeout=5)
        assert sorted(info.value.errors) == [1, 2] or len(info.value.errors) >= 2
        assert all(e.code == grpc.StatusCode.UNKNOWN for e in info.value.errors.values())
        with pytest.raises(
            QuorumCallError,
            match=r"needs 4 replicas \(quorum=4; 3 are configured\), and this configuration has 3",
        ):
            await replicas[1].config().quorum_call(SAY, Request(), Reply, quorum=4)
        with pytest.raises(ValueError):
            await replicas[1].config().quorum_call(SAY, Request(), Reply, quorum=0)


async def test_peer_killed_mid_call() -> None:
    servicers: dict[int, Echo] = {}
    async with LocalReplicas(3, setup_echo(servicers)) as replicas:
        await replicas.wait_full()
        config = replicas[1].config()
        slow = asyncio.create_task(config.node(3).rpc(SAY, Request(number=-1), Reply, timeout=10))
        await asyncio.wait_for(servicers[3].blocked.wait(), 5)
        await replicas.stop(3)
        with pytest.raises(CallError) as info:
            await asyncio.wait_for(slow, 5)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        # A quorum (2 of 3) remains, so the quorum call on the old configuration succeeds.
        replies = await config.quorum_call(SAY, Request(), Reply, timeout=5)
        assert sorted(replies) == [1, 2]
        await replicas[1].wait_for_config(lambda c: c.ids == (1, 2), timeout=10)
        await replicas.start([3])
        await replicas.wait_full()
        replies = await config.quorum_call(SAY, Request(), Reply, quorum=3, timeout=5)
        assert sorted(replies) == [1, 2, 3]  # the old snapshot's node 3 works again
        await assert_one_stream_per_pair(replicas)  # the pairs agree again after the restart


async def test_trace_spans_caller_and_callee(spans: Spans) -> None:
    servicers: dict[int, Echo] = {}
    tracer = spans.provider.get_tracer("test")

    class Traced(Echo):
        async def Say(self, request: Any, context: Any) -> Reply:
            with tracer.start_as_current_span("handler"):
                return await super().Say(request, context)

    def setup(system: System) -> None:
        servicer = servicers[system.id] = Traced(system.id)
        system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, servicer)

    async with LocalReplicas(2, setup, tracer_provider=spans.provider) as replicas:
        await replicas.wait_full()
        await assert_one_stream_per_pair(replicas)
        for caller in (1, 2):  # over the stream's dialing end, then its accepting end
            await assert_call_traced(replicas[caller], spans, tracer)


async def assert_call_traced(system: System, spans: Spans, tracer: Any) -> None:
    spans.exporter.clear()
    with tracer.start_as_current_span("root") as root:
        await system.config().quorum_call(SAY, Request(), Reply, quorum=2, timeout=5)
    trace_id = root.get_span_context().trace_id
    quorum = spans.named("gorums.quorum_call")[0]
    assert quorum.context.trace_id == trace_id
    assert quorum.attributes["gorums.method"] == SAY
    assert quorum.attributes["gorums.quorum"] == 2
    assert quorum.attributes["gorums.replies"] == 2
    assert quorum.attributes["gorums.node.id"] == system.id
    # quorum call → one CLIENT span per node → that node's SERVER span (the
    # trace travels in the message metadata) → the handler's own span.
    clients = [s for s in spans.named("echo.Echo/Say") if s.kind == SpanKind.CLIENT]
    servers = [s for s in spans.named("echo.Echo/Say") if s.kind == SpanKind.SERVER]
    assert len(clients) == len(servers) == 2
    assert {c.parent.span_id for c in clients if c.parent} == {quorum.context.span_id}
    assert {c.attributes["gorums.peer.id"] for c in clients} == {1, 2}
    for client in clients:
        assert client.attributes["rpc.system"] == "grpc"
        assert client.attributes["rpc.service"] == "echo.Echo"
        assert client.attributes["rpc.method"] == "Say"
        assert client.attributes["rpc.grpc.status_code"] == 0
        assert client.attributes["gorums.node.id"] == system.id
        assert client.attributes["server.address"] == "127.0.0.1"
        server = next(s for s in servers if s.parent and s.parent.span_id == client.context.span_id)
        assert server.parent is not None and server.parent.is_remote
        assert server.attributes["gorums.node.id"] == client.attributes["gorums.peer.id"]
        assert server.attributes["gorums.peer.id"] == system.id
    handlers = spans.named("handler")
    assert len(handlers) == 2
    assert all(h.context.trace_id == trace_id for h in handlers)
    assert {h.parent.span_id for h in handlers if h.parent} == {s.context.span_id for s in servers}


async def test_higher_replica_survives_its_inbound_stream_closing() -> None:
    """Closing the stream a lower ID dialed must not wedge the higher replica's dialer."""
    servicers: dict[int, Echo] = {}
    async with LocalReplicas(2, setup_echo(servicers)) as replicas:
        await replicas.wait_full()
        await replicas[2].wait_for_config(lambda _: settled(replicas[2]), timeout=10)
        inbound = wiring_of(replicas[2].manager).inbound_stream(1)
        assert isinstance(inbound, StreamEndpoint)
        inbound.close()
        # The pair reconnects (over a new stream) and calls work both ways.
        await replicas[2].wait_for_config(
            lambda c: wiring_of(replicas[2].manager).inbound_stream(1) not in (None, inbound),
            timeout=10,
        )
        await replicas.wait_full()
        reply = await replicas[2].config().node(1).rpc(SAY, Request(), Reply, timeout=5)
        assert reply.node_id == 1


async def test_a_replica_whose_own_name_does_not_resolve_yet_still_constructs() -> None:
    nodes = with_nodes({1: "node-1.invalid:9001", 2: "node-2.invalid:9002"})
    assert System(1, nodes).address == "node-1.invalid:9001"


async def test_stop_closes_the_manager() -> None:
    """A stopped replica's manager is closed: its streams end and calls through
    the configurations it gave out fail at once."""
    async with LocalReplicas(2, setup_echo({})) as replicas:
        await replicas.wait_full()
        peers = replicas[1].manager.inbound_config()
        await replicas[1].stop()
        assert repr(replicas[1].manager) == "<InboundManager id=1 closed peers=[] clients=0>"
        with pytest.raises(RuntimeError, match="InboundManager 1 was stopped"):
            await peers.node(2).rpc(SAY, Request(), Reply, timeout=5)
        with pytest.raises(RuntimeError, match="InboundManager 1 was stopped"):
            await peers.quorum_call(SAY, Request(), Reply, timeout=5)
