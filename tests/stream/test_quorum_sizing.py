"""Quorums are sized by the configured replicas, never by those connected now; and
nothing answers a call before its System or manager has started."""

from __future__ import annotations

import pytest

from gorums_mw import (
    Configuration,
    InboundManager,
    Node,
    OutboundManager,
    QuorumCallError,
    System,
    with_nodes,
)
from gorums_mw.testing import LocalReplicas, free_ports
from tests import calltypes_pb2, calltypes_pb2_grpc, echo_pb2
from tests._echo import setup
from tests.calltypes_gorums import CallsConfiguration
from tests.codegen.test_calls import Store

SAY = "echo.Echo.Say"
REQUEST = echo_pb2.EchoRequest(text="x")
Reply = echo_pb2.EchoReply


async def test_a_replica_left_alone_does_not_decide_by_default() -> None:
    async with LocalReplicas(3, setup) as replicas:
        await replicas.wait_full()
        await replicas.stop(2)
        await replicas.stop(3)
        alone = await replicas[1].wait_for_config(lambda c: c.ids == (1,), timeout=10)
        assert alone.configured == 3 and alone.majority() == 2
        with pytest.raises(QuorumCallError) as failure:
            await alone.quorum_call(SAY, REQUEST, Reply, timeout=5)
        assert (
            "needs 2 replicas (a majority of the 3 configured), and this configuration has 1 ([1])"
            in str(failure.value)
        )
        assert failure.value.errors == {}  # refused at once: nothing was sent
        # An explicit quorum stays the caller's choice.
        replies = await alone.quorum_call(SAY, REQUEST, Reply, quorum=1, timeout=5)
        assert list(replies) == [1]


async def test_the_majority_side_decides_with_the_default_quorum() -> None:
    async with LocalReplicas(3, setup) as replicas:
        await replicas.wait_full()
        await replicas.stop(3)
        pair = await replicas[1].wait_for_config(lambda c: c.ids == (1, 2), timeout=10)
        replies = await pair.quorum_call(SAY, REQUEST, Reply, timeout=5)
        assert len(replies) >= 2


async def test_reshaped_configurations_keep_the_configured_set() -> None:
    async with LocalReplicas(3, setup) as replicas:
        await replicas.wait_full()
        config = replicas[1].config()
        for reshaped in (
            config.remove(2, 3),
            config - config.remove(1),
            config & config.remove(3),
            config.remove(3).add(3),
            config.sorted_by(lambda node: -node.id),
            config.remove(2) | config.remove(3),
        ):
            assert reshaped.configured == 3 and reshaped.majority() == 2, reshaped
        with pytest.raises(QuorumCallError, match="a majority of the 3 configured"):
            await config.remove(2, 3).quorum_call(SAY, REQUEST, Reply, timeout=5)


def test_bare_nodes_have_no_configured_set_behind_them() -> None:
    bare = Configuration([Node(7, "127.0.0.1:7"), Node(8, "127.0.0.1:8")])
    assert bare.configured == 2 and bare.majority() == 2
    assert bare.remove(8).majority() == 1


async def test_combining_two_origins_sizes_quorums_by_both_sets() -> None:
    inbound = InboundManager(1, with_nodes({1: "127.0.0.1:1", 2: "127.0.0.1:2"}))
    bare = Configuration([Node(7, "127.0.0.1:7"), Node(8, "127.0.0.1:8"), Node(9, "127.0.0.1:9")])
    assert inbound.inbound_config().configured == 2
    combined = inbound.inbound_config() | bare
    assert combined.ids == (7, 8, 9)
    assert combined.configured == 5 and combined.majority() == 3  # {1, 2} and {7, 8, 9}
    assert inbound.client_config().configured == 0  # client peers: their own number


async def test_typed_calls_follow_the_same_rule() -> None:
    def serve(system: System) -> None:
        system.add_servicer(calltypes_pb2_grpc.add_CallsServicer_to_server, Store(system.id))

    async with LocalReplicas(3, serve) as replicas:
        await replicas.wait_full()
        await replicas.stop(2)
        await replicas.stop(3)
        alone = await replicas[1].wait_for_config(lambda c: c.ids == (1,), timeout=10)
        calls = CallsConfiguration(alone)
        with pytest.raises(QuorumCallError, match="a majority of the 3 configured"):
            await calls.Read(calltypes_pb2.Key(key="k"), timeout=5)
        assert list(await calls.Read(calltypes_pb2.Key(key="k"), quorum=1, timeout=5)) == [1]


async def test_a_system_that_never_started_answers_nothing() -> None:
    ports = free_ports(3)
    nodes = with_nodes({i + 1: f"127.0.0.1:{port}" for i, port in enumerate(ports)})
    system = System(1, nodes)
    setup(system)
    config = system.config()
    assert config.ids == (1,)
    with pytest.raises(RuntimeError, match=r"System 1 was never started: await start\(\)"):
        await config.quorum_call(SAY, REQUEST, Reply, quorum=1, timeout=5)
    with pytest.raises(RuntimeError, match="was never started"):
        await config.node(1).rpc(SAY, REQUEST, Reply, timeout=5)
    with pytest.raises(RuntimeError, match="was never started"):
        await config.multicast(SAY, REQUEST)
    with pytest.raises(RuntimeError, match="was never started"):
        async for _ in config.replies(SAY, REQUEST, Reply, timeout=5):
            pass
    await system.start()
    assert list(await config.quorum_call(SAY, REQUEST, Reply, quorum=1, timeout=5)) == [1]
    await system.stop()
    with pytest.raises(RuntimeError, match="System 1 was stopped"):
        await config.quorum_call(SAY, REQUEST, Reply, quorum=1, timeout=5)


async def test_a_dialer_that_never_started_says_so_not_disconnected() -> None:
    (port,) = free_ports(1)
    dialer = OutboundManager(with_nodes({1: f"127.0.0.1:{port}"}))
    with pytest.raises(RuntimeError, match="OutboundManager was never started"):
        await dialer.config().quorum_call(SAY, REQUEST, Reply, timeout=5)
    with pytest.raises(RuntimeError, match="OutboundManager was never started"):
        await dialer.config().node(1).unicast(SAY, REQUEST)
    await dialer.start()
    await dialer.stop()
    with pytest.raises(RuntimeError, match="OutboundManager was stopped"):
        await dialer.config().node(1).rpc(SAY, REQUEST, Reply, timeout=5)
