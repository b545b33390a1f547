"""The generated typed calls (tests/calltypes_gorums.py) on real replicas, by call type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from google.protobuf.empty_pb2 import Empty

from gorums_mw import NodeReply, QuorumCallError, System
from gorums_mw.testing import LocalReplicas
from tests import calltypes_pb2, calltypes_pb2_grpc
from tests.calltypes_gorums import (
    AdminNode,
    CallsConfiguration,
    CallsNode,
    CallsReplies,
)

Key = calltypes_pb2.Key
Entry = calltypes_pb2.Entry
Ack = calltypes_pb2.Ack


class Store(calltypes_pb2_grpc.CallsServicer, calltypes_pb2_grpc.AdminServicer):
    """One node's entries; ``Watch`` streams the entry and each newer version."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.entries: dict[str, Entry] = {}
        self.changed = asyncio.Condition()

    def get(self, key: str) -> Entry:
        entry = Entry()
        entry.CopyFrom(self.entries.get(key, Entry(key=key)))
        entry.node = self.node_id
        return entry

    async def put(self, entry: Entry) -> bool:
        if entry.version <= self.entries.get(entry.key, Entry()).version:
            return False
        self.entries[entry.key] = entry
        async with self.changed:
            self.changed.notify_all()
        return True

    async def Get(self, request: Key, context: Any) -> Entry:
        return self.get(request.key)

    async def Set(self, request: Entry, context: Any) -> Ack:
        return Ack(stored=await self.put(request))

    async def Read(self, request: Key, context: Any) -> Entry:
        if request.key == "fail":
            raise ValueError("asked to fail")
        return self.get(request.key)

    async def wait(self, key: str, version: int) -> Entry:
        """The entry of ``key`` once its version is above ``version``."""
        async with self.changed:
            await self.changed.wait_for(lambda: self.get(key).version > version)
        return self.get(key)

    async def Watch(self, request: Key, context: Any) -> AsyncIterator[Entry]:
        entry = self.get(request.key)
        while True:
            yield entry
            entry = await self.wait(request.key, entry.version)

    async def Publish(self, request: Entry, context: Any) -> Empty:
        await self.put(request)
        return Empty()

    async def Notify(self, request: Entry, context: Any) -> Empty:
        await self.put(request)
        return Empty()

    async def Stats(self, request: Empty, context: Any) -> Entry.Stats:
        return Entry.Stats(entries=len(self.entries))


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[LocalReplicas, dict[int, Store]]]:
    stores: dict[int, Store] = {}

    def setup(system: System) -> None:
        store = stores[system.id] = Store(system.id)
        system.add_servicer(calltypes_pb2_grpc.add_CallsServicer_to_server, store)
        system.add_servicer(calltypes_pb2_grpc.add_AdminServicer_to_server, store)

    async with LocalReplicas(3, setup) as local:
        await local.wait_full()
        yield local, stores


def newest(replies: Mapping[int, Entry]) -> Entry | None:
    """A quorum function: the newest entry once two nodes replied."""
    if len(replies) < 2:
        return None
    return max(replies.values(), key=lambda entry: entry.version)


async def test_quorum_call_returns_replies_by_node(replicas: Any) -> None:
    local, stores = replicas
    await stores[2].put(Entry(key="k", value="v", version=1))
    calls = CallsConfiguration(local[1].config())
    majority = await calls.Read(Key(key="k"), timeout=5)
    assert len(majority) >= 2 and all(isinstance(e, Entry) for e in majority.values())
    assert {entry.node for entry in majority.values()} == set(majority)
    every = await calls.Read(Key(key="k"), quorum=3, timeout=5)
    assert sorted(every) == [1, 2, 3]
    assert every[2].value == "v" and every[1].value == ""


async def test_quorum_function_result_is_returned(replicas: Any) -> None:
    local, stores = replicas
    for node_id in (1, 2, 3):
        await stores[node_id].put(Entry(key="k", value=f"v{node_id}", version=node_id))
    calls = CallsConfiguration(local[1].config())
    entry = await calls.Read(Key(key="k"), quorum_function=newest, timeout=5)
    assert isinstance(entry, Entry) and entry.version >= 2


async def test_quorum_call_failure_is_the_string_apis(replicas: Any) -> None:
    local, _ = replicas
    calls = CallsConfiguration(local[1].config())
    with pytest.raises(QuorumCallError) as failure:
        await calls.Read(Key(key="fail"), timeout=5)
    assert "asked to fail" in str(failure.value)
    with pytest.raises(ValueError, match="not both"):
        await calls.Read(Key(), quorum=2, quorum_function=newest)  # type: ignore[call-overload]


async def test_replies_yield_each_node(replicas: Any) -> None:
    local, _ = replicas
    calls = CallsConfiguration(local[1].config())
    assert isinstance(calls.replies, CallsReplies)
    answers = [answer async for answer in calls.replies.Read(Key(key="k"), timeout=5)]
    assert sorted(answer.node_id for answer in answers) == [1, 2, 3]
    assert all(isinstance(answer, NodeReply) and answer.error is None for answer in answers)
    assert all(
        answer.value is not None and answer.value.node == answer.node_id for answer in answers
    )
    failed = [a async for a in calls.replies.Read(Key(key="fail"), timeout=5)]
    assert len(failed) == 3 and all(answer.error is not None for answer in failed)
    kept = [a async for a in calls.replies.Read(Key(key="fail"), timeout=5, ignore_errors=True)]
    assert kept == []


async def test_correctable_yields_replies_and_improving_results(replicas: Any) -> None:
    local, stores = replicas
    calls = CallsConfiguration(local[1].config())
    first: list[NodeReply[Entry]] = []
    async for answer in calls.Watch(Key(key="w"), timeout=5):
        first.append(answer)
        if len(first) == 3:
            break
    assert sorted(answer.node_id for answer in first) == [1, 2, 3]

    versions: list[int] = []
    async for best in calls.Watch(Key(key="w"), quorum_function=newest, timeout=5):
        versions.append(best.version)
        if best.version == 0 and len(versions) == 1:
            for store in stores.values():
                await store.put(Entry(key="w", value="new", version=7))
        if best.version == 7:
            break
    assert versions[0] == 0 and versions[-1] == 7


async def test_multicast_reaches_every_node(replicas: Any) -> None:
    local, stores = replicas
    calls = CallsConfiguration(local[1].config())
    sent = await calls.Publish(Entry(key="m", value="all", version=1))
    assert sent == (1, 2, 3)
    async with asyncio.timeout(5):
        for store in stores.values():
            assert (await store.wait("m", 0)).value == "all"


async def test_rpc_and_unicast_on_one_node(replicas: Any) -> None:
    local, stores = replicas
    node = CallsNode(local[1].config().node(2))
    ack = await node.Set(Entry(key="r", value="one", version=1), timeout=5)
    assert isinstance(ack, Ack) and ack.stored
    entry = await node.Get(Key(key="r"), timeout=5)
    assert (entry.value, entry.node) == ("one", 2)
    assert await node.Notify(Entry(key="u", value="two", version=1)) is True
    async with asyncio.timeout(5):
        assert (await stores[2].wait("u", 0)).value == "two"
    assert stores[3].get("u").value == ""
    stats = await AdminNode(local[1].config().node(3)).Stats(Empty(), timeout=5)
    assert isinstance(stats, Entry.Stats) and stats.entries == 0


async def test_wrappers_show_what_they_wrap(replicas: Any) -> None:
    local, _ = replicas
    config = local[1].config()
    assert repr(CallsConfiguration(config)) == "<CallsConfiguration ids=[1, 2, 3]>"
    assert repr(CallsConfiguration(config).replies) == "<CallsReplies ids=[1, 2, 3]>"
    assert repr(CallsNode(config.node(2))) == f"<CallsNode {config.node(2)!r}>"
    assert CallsConfiguration(config).config is config
