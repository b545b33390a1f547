"""A gorums-mw client against stock Go Gorums servers: every call type.

The servers are ``gorums-go-peer server`` without ``--send-header``: like
upstream, they send a NodeStream's response headers only with its first
reply, so a dialer that waits for headers never sees its streams come up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import grpc
import pytest

from gorums_mw import CallError, Configuration, OutboundManager, QuorumCallError, with_nodes
from tests.interop.conftest import StartGo
from tests.interop.proto.storage_gorums import StorageConfiguration, StorageNode
from tests.interop.storage import (
    FAIL,
    FAIL_MESSAGE,
    META,
    META_KEY,
    READ_CORRECTABLE,
    READ_QC,
    READ_RPC,
    WHOAMI,
    WRITE_MULTICAST,
    WRITE_QC,
    WRITE_RPC,
    WRITE_UNICAST,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
    at,
    stamp,
)

SIZE = 3
CORRECTABLE_WAIT = 0.5
"""Seconds a correctable call waits for more replies: nothing marks the last one."""


@pytest.fixture
async def go_config(start_go: StartGo) -> AsyncIterator[Configuration]:
    """Three stock Go servers (IDs 1..3) and a connected gorums-mw client configuration."""
    servers = await asyncio.gather(
        *(start_go("server", "--id", str(i), "--seconds", "60") for i in range(1, SIZE + 1))
    )
    nodes = with_nodes({i: server.addr for i, server in enumerate(servers, start=1)})
    async with OutboundManager(nodes) as dialer:
        await dialer.wait_connected(timeout=5)
        yield dialer.config()


async def write_everywhere(config: Configuration) -> None:
    """Write ``k = v1`` on every node."""
    request = WriteRequest(key="k", value="v1", time=at(1))
    await config.quorum_call(WRITE_QC, request, WriteResponse, quorum=SIZE, timeout=5)


async def test_streams_to_stock_go_servers_come_up(go_config: Configuration) -> None:
    # The fixture's wait_connected passed: no response headers were needed.
    assert [node.connected for node in go_config] == [True] * SIZE


async def test_write_and_read_quorum_calls(go_config: Configuration) -> None:
    written = await go_config.quorum_call(
        WRITE_QC, WriteRequest(key="k", value="v1", time=at(1)), WriteResponse, timeout=5
    )
    assert len(written) >= 2 and all(reply.new for reply in written.values())
    read = await go_config.quorum_call(
        READ_QC, ReadRequest(key="k"), ReadResponse, quorum=SIZE, timeout=5
    )
    assert sorted(read) == [1, 2, 3]
    for reply in read.values():
        assert (reply.OK, reply.value, reply.time) == (True, "v1", at(1))


async def test_quorum_function_picks_the_newest_value(go_config: Configuration) -> None:
    for node in go_config:
        request = WriteRequest(key="qf", value=f"n{node.id}", time=at(node.id))
        assert (await node.rpc(WRITE_RPC, request, WriteResponse, timeout=5)).new

    def newest_of_all(replies: Mapping[int, ReadResponse]) -> str | None:
        if len(replies) < SIZE:
            return None
        return max(replies.values(), key=lambda reply: stamp(reply.time)).value

    newest = await go_config.quorum_call(
        READ_QC, ReadRequest(key="qf"), ReadResponse, timeout=5, quorum_function=newest_of_all
    )
    assert newest == f"n{SIZE}"


async def test_rpc_on_each_node(go_config: Configuration) -> None:
    for node in go_config:
        reply = await node.rpc(READ_RPC, ReadRequest(key=WHOAMI), ReadResponse, timeout=5)
        # caller=-: this client sent no gorums-node-id (it is not a replica).
        assert reply.value == f"server={node.id} caller=- impl=go"


async def test_multicast_reaches_every_node(go_config: Configuration) -> None:
    sent = await go_config.multicast(
        WRITE_MULTICAST, WriteRequest(key="mc", value="m1", time=at(1))
    )
    assert sent == (1, 2, 3)
    # A Go server serves one stream's requests in order: the read comes after the write.
    for node in go_config:
        reply = await node.rpc(READ_RPC, ReadRequest(key="mc"), ReadResponse, timeout=5)
        assert (reply.OK, reply.value) == (True, "m1"), node


async def test_unicast_reaches_one_node(go_config: Configuration) -> None:
    target = go_config.node(2)
    assert await target.unicast(WRITE_UNICAST, WriteRequest(key="uc", value="u1", time=at(1)))
    for node in go_config:
        reply = await node.rpc(READ_RPC, ReadRequest(key="uc"), ReadResponse, timeout=5)
        assert reply.value == ("u1" if node is target else ""), node


async def test_unknown_method_is_unimplemented(go_config: Configuration) -> None:
    # proto.Storage is known here, so its unknown methods fail before sending.
    with pytest.raises(ValueError, match="no method 'NoSuchMethod'"):
        await go_config.node(1).rpc("proto.Storage.NoSuchMethod", ReadRequest(), ReadResponse)
    # A service unknown here goes on the wire; Go answers UNIMPLEMENTED.
    unknown = "proto.NoSuchService.Read"
    with pytest.raises(CallError) as raised:
        await go_config.node(1).rpc(unknown, ReadRequest(), ReadResponse, timeout=5)
    assert raised.value.code is grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(QuorumCallError) as quorum_raised:
        await go_config.quorum_call(unknown, ReadRequest(), ReadResponse, timeout=5)
    errors = quorum_raised.value.errors
    assert errors and {e.code for e in errors.values()} == {grpc.StatusCode.UNIMPLEMENTED}
    # The stream stays up.
    await go_config.node(1).rpc(READ_RPC, ReadRequest(key="k"), ReadResponse, timeout=5)


async def test_handler_error_status_travels_back(go_config: Configuration) -> None:
    with pytest.raises(CallError) as raised:
        await go_config.node(1).rpc(READ_RPC, ReadRequest(key=FAIL), ReadResponse, timeout=5)
    assert raised.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details == FAIL_MESSAGE
    with pytest.raises(QuorumCallError) as quorum_raised:
        await go_config.quorum_call(READ_QC, ReadRequest(key=FAIL), ReadResponse, timeout=5)
    codes = {e.code for e in quorum_raised.value.errors.values()}
    assert codes == {grpc.StatusCode.FAILED_PRECONDITION}


async def test_message_metadata_entries_reach_go_handlers(go_config: Configuration) -> None:
    entries = ((META_KEY, "42"),)
    node = go_config.node(1)
    reply = await node.rpc(
        READ_RPC, ReadRequest(key=META), ReadResponse, timeout=5, metadata=entries
    )
    assert reply.value == "42"
    replies = await go_config.quorum_call(
        READ_QC, ReadRequest(key=META), ReadResponse, quorum=SIZE, timeout=5, metadata=entries
    )
    assert {reply.value for reply in replies.values()} == {"42"}


async def test_node_correctable(go_config: Configuration) -> None:
    await write_everywhere(go_config)
    node = go_config.node(3)
    # Go's handler sends one reply; nothing marks it as the last, so the call ends at its timeout.
    replies = [
        reply.value
        async for reply in node.correctable(
            READ_CORRECTABLE, ReadRequest(key="k"), ReadResponse, timeout=CORRECTABLE_WAIT
        )
    ]
    assert replies == ["v1"]
    # Go's handler sends nothing when its read fails (no error status either).
    failing = node.correctable(
        READ_CORRECTABLE, ReadRequest(key=FAIL), ReadResponse, timeout=CORRECTABLE_WAIT
    )
    assert [reply async for reply in failing] == []


async def test_configuration_correctable(go_config: Configuration) -> None:
    await write_everywhere(go_config)
    every = [
        answer
        async for answer in go_config.correctable(
            READ_CORRECTABLE, ReadRequest(key="k"), ReadResponse, timeout=CORRECTABLE_WAIT
        )
    ]
    assert sorted(answer.node_id for answer in every) == [1, 2, 3]
    assert all(a.error is None and a.value is not None and a.value.value == "v1" for a in every)

    def majority(replies: Mapping[int, ReadResponse]) -> str | None:
        return next(iter(replies.values())).value if len(replies) >= 2 else None

    results = go_config.correctable(
        READ_CORRECTABLE, ReadRequest(key="k"), ReadResponse, timeout=5, quorum_function=majority
    )
    async for value in results:
        assert value == "v1"
        break  # the first majority: done, long before the timeout
    else:
        pytest.fail("no majority of correctable replies")


async def test_typed_calls_generated_from_upstreams_proto(go_config: Configuration) -> None:
    """protoc-gen-gorums' calls for upstream's storage.proto, against Go."""
    storage = StorageConfiguration(go_config)
    written = await storage.WriteQC(WriteRequest(key="t", value="typed", time=at(1)), timeout=5)
    assert len(written) >= 2 and all(reply.new for reply in written.values())
    read = await storage.ReadQC(ReadRequest(key="t"), quorum=SIZE, timeout=5)
    assert {reply.value for reply in read.values()} == {"typed"}
    assert await storage.WriteMulticast(WriteRequest(key="tm", value="m", time=at(1))) == (1, 2, 3)
    node = StorageNode(go_config.node(1))
    assert await node.WriteUnicast(WriteRequest(key="tu", value="u", time=at(1)))
    assert (await node.ReadRPC(ReadRequest(key="tm"), timeout=5)).value == "m"
    assert (await node.ReadRPC(ReadRequest(key="tu"), timeout=5)).value == "u"
    answers = storage.ReadCorrectable(ReadRequest(key="t"), timeout=CORRECTABLE_WAIT)
    nodes = [a.node_id async for a in answers if a.value is not None and a.value.value == "typed"]
    assert sorted(nodes) == [1, 2, 3]
