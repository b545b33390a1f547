"""Per-call options on real replicas: metadata, interceptors, ignore_errors, reshaping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from gorums_mw import CallError, CallInfo, NodeReply, QuorumCallError, System
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw.testing import LocalReplicas
from tests import echo_pb2, echo_pb2_grpc
from tests.conftest import eventually

pytestmark = pytest.mark.usefixtures("both_framings")

SAY = "echo.Echo.Say"
STREAM = "echo.Echo.Stream"
Request = echo_pb2.EchoRequest
Reply = echo_pb2.EchoReply


class Echo(echo_pb2_grpc.EchoServicer):
    """Say echoes its text and its ``x-tag`` metadata; ``number`` < 0 fails it;
    ``delay`` seconds pass before each reply."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.delay = 0.0
        self.texts: list[str] = []

    async def Say(self, request: Any, context: Any) -> Reply:
        self.texts.append(request.text)
        if request.number < 0:
            raise ValueError("asked to fail")
        await asyncio.sleep(self.delay)
        tag = dict(context.invocation_metadata()).get("x-tag", "")
        return Reply(text=f"{request.text}|{tag}", node_id=self.node_id)

    async def Stream(self, request: Any, context: Any) -> AsyncIterator[Reply]:
        tag = dict(context.invocation_metadata()).get("x-tag", "")
        for number in range(2):
            yield Reply(text=f"{request.text}|{tag}", number=number, node_id=self.node_id)


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[LocalReplicas, dict[int, Echo]]]:
    servicers: dict[int, Echo] = {}

    def setup(system: System) -> None:
        servicers[system.id] = Echo(system.id)
        system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, servicers[system.id])

    async with LocalReplicas(3, setup) as running:
        await running.wait_full()
        yield running, servicers


def in_flight(replicas: LocalReplicas) -> int:
    """Calls sent over streams that still wait for a reply, on every replica."""
    return sum(
        node.channel.in_flight
        for system in replicas
        for node in system.config()
        if isinstance(node.channel, StreamEndpoint)
    )


async def test_metadata_reaches_every_handler(replicas: Any) -> None:
    running, _ = replicas
    config = running[1].config()
    tag = (("x-tag", "t1"),)
    replies = await config.quorum_call(SAY, Request(text="q"), Reply, quorum=3, metadata=tag)
    assert {r.text for r in replies.values()} == {"q|t1"}
    reply = await config.node(2).rpc(SAY, Request(text="r"), Reply, timeout=5, metadata=tag)
    assert reply.text == "r|t1"
    async for answer in config.correctable(
        STREAM, Request(text="c"), Reply, timeout=1, metadata=tag
    ):
        assert answer.value is not None and answer.value.text == "c|t1"
    with pytest.raises(TypeError, match="metadata must be"):
        await config.quorum_call(SAY, Request(), Reply, metadata=[("x-tag", 5)])  # type: ignore[list-item]


def shard(
    call: CallInfo[Any], replies: AsyncIterator[NodeReply[Reply]]
) -> AsyncIterator[NodeReply[Reply]]:
    """Give each node its share of a comma-separated batch of keys (node k: every k-th)."""
    size = len(call.config)

    def share(request: Request, node: Any) -> Request | None:
        keys = request.text.split(",")[node.id - 1 :: size]
        return Request(text=",".join(keys)) if keys else None

    call.map_request(share)
    return replies


async def test_an_interceptor_gives_each_node_its_own_request(replicas: Any) -> None:
    running, servicers = replicas
    replies = (
        await running[1]
        .config()
        .quorum_call(
            SAY, Request(text="a,b,c,d,e"), Reply, quorum=3, timeout=5, interceptors=[shard]
        )
    )
    assert {node_id: r.text for node_id, r in replies.items()} == {
        1: "a,d|",
        2: "b,e|",
        3: "c|",
    }
    assert servicers[2].texts == ["b,e"]


async def test_interceptors_filter_rewrite_and_compose_in_order(replicas: Any) -> None:
    running, _ = replicas
    seen: list[str] = []

    async def drop_two(
        call: CallInfo[Any], replies: AsyncIterator[NodeReply[Reply]]
    ) -> AsyncIterator[NodeReply[Reply]]:
        async for answer in replies:
            seen.append(f"inner {answer.node_id}")
            if answer.node_id != 2:
                yield answer

    async def shout(
        call: CallInfo[Any], replies: AsyncIterator[NodeReply[Reply]]
    ) -> AsyncIterator[NodeReply[Reply]]:
        async for answer in replies:
            seen.append(f"outer {answer.node_id}")
            assert answer.value is not None
            yield NodeReply(answer.node_id, Reply(text=answer.value.text.upper()), None)

    config = running[1].config()
    replies = await config.quorum_call(
        SAY, Request(text="hi"), Reply, quorum=2, timeout=5, interceptors=[drop_two, shout]
    )
    assert {r.text for r in replies.values()} == {"HI|"}
    assert 2 not in replies
    assert all(f"outer {n}" not in seen or f"inner {n}" in seen for n in (1, 3))  # inner first
    with pytest.raises(QuorumCallError):  # node 2's reply never counts
        await config.quorum_call(
            SAY, Request(text="hi"), Reply, quorum=3, timeout=5, interceptors=[drop_two]
        )


async def test_an_interceptor_can_end_the_call_early(replicas: Any) -> None:
    running, servicers = replicas
    servicers[3].delay = 30.0  # never answers within the test

    async def first_only(
        call: CallInfo[Any], replies: AsyncIterator[NodeReply[Reply]]
    ) -> AsyncIterator[NodeReply[Reply]]:
        async for answer in replies:
            yield answer
            return

    config = running[1].config()
    replies = await asyncio.wait_for(
        config.quorum_call(SAY, Request(), Reply, quorum=1, interceptors=[first_only], timeout=1),
        5,
    )
    assert len(replies) == 1
    with pytest.raises(QuorumCallError):
        await asyncio.wait_for(
            config.quorum_call(
                SAY, Request(), Reply, quorum=2, interceptors=[first_only], timeout=1
            ),
            5,
        )
    # The rest listen for late replies (latencies) until the deadline, then are given up.
    await eventually(lambda: in_flight(running) == 0, timeout=3)


async def test_a_failing_interceptor_fails_the_call_and_leaks_nothing(replicas: Any) -> None:
    running, servicers = replicas
    servicers[3].delay = 30.0

    async def broken(
        call: CallInfo[Any], replies: AsyncIterator[NodeReply[Reply]]
    ) -> AsyncIterator[NodeReply[Reply]]:
        async for answer in replies:
            raise RuntimeError(f"interceptor broke on node {answer.node_id}")
            yield answer

    with pytest.raises(RuntimeError, match="interceptor broke on node"):
        await asyncio.wait_for(
            running[1]
            .config()
            .quorum_call(SAY, Request(), Reply, interceptors=[broken], timeout=1),
            5,
        )
    await eventually(lambda: in_flight(running) == 0, timeout=3)  # given up at the deadline


async def test_ignore_errors_skips_failed_nodes(replicas: Any) -> None:
    running, _ = replicas
    config = running[1].config()
    answers = [a async for a in config.replies(SAY, Request(number=-1), Reply, timeout=5)]
    assert len(answers) == 3 and all(a.error is not None for a in answers)
    kept = [
        a
        async for a in config.replies(SAY, Request(number=-1), Reply, timeout=5, ignore_errors=True)
    ]
    assert kept == []


async def test_without_errors_drops_a_failed_replica_and_union_brings_it_back(
    replicas: Any,
) -> None:
    running, _ = replicas
    writes = running[1].config()
    await running.stop(3)
    await running[1].wait_for_config(lambda c: c.ids == (1, 2), timeout=10)
    with pytest.raises(QuorumCallError) as info:
        await writes.quorum_call(SAY, Request(), Reply, quorum=3, timeout=5)
    assert info.value.errors[3].code == grpc.StatusCode.UNAVAILABLE
    writes = writes.without_errors(info.value)
    assert writes.ids == (1, 2)
    assert len(await writes.quorum_call(SAY, Request(), Reply, quorum=2, timeout=5)) == 2
    await running.start([3])
    back = await running[1].wait_for_config(lambda c: 3 in c, timeout=10)
    writes = writes | back
    assert writes.ids == (1, 2, 3)
    assert len(await writes.quorum_call(SAY, Request(), Reply, quorum=3, timeout=5)) == 3


async def test_the_fastest_quorum_by_latency(replicas: Any) -> None:
    running, servicers = replicas
    servicers[2].delay = 0.05
    config = running[1].config()
    for _ in range(3):
        await config.quorum_call(SAY, Request(), Reply, quorum=3, timeout=5)
    by_latency = config.sorted_by(lambda node: node.latency)
    assert by_latency.ids[-1] == 2  # the slow one last
    fastest = by_latency.remove(*by_latency.ids[config.majority() :])
    assert 2 not in fastest and len(fastest) == config.majority()
    assert all(node.last_error is None for node in config)
    with pytest.raises(CallError):
        await config.node(3).rpc(SAY, Request(number=-1), Reply, timeout=5)
    assert config.node(3).last_error is not None


async def test_multicast_and_correctable_take_interceptors(replicas: Any) -> None:
    running, servicers = replicas
    config = running[1].config()
    sent = await config.multicast(SAY, Request(text="x,y,z"), interceptors=[shard])
    assert sent == (1, 2, 3)
    await eventually(lambda: servicers[3].texts == ["z"], timeout=5)
    values = [
        a.value.text
        async for a in config.correctable(
            STREAM, Request(text="x,y,z"), Reply, timeout=1, interceptors=[shard]
        )
        if a.value is not None
    ]
    assert sorted(values) == ["x|", "x|", "y|", "y|", "z|", "z|"]
