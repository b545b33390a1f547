"""Reshaping configurations and calls: the fastest quorum, and a batch sharded by node.

Five replicas run in this process; two of them answer slowly. The example

1. makes a few quorum calls over every replica, so each node learns its
   smoothed latency (``Node.latency``), then keeps the fastest majority with
   ``config.sorted_by(lambda n: n.latency)`` and calls only those;
2. looks up a batch of keys with a call interceptor that gives each node its
   own request: only the keys that node holds (``CallInfo.map_request``), so
   no replica is asked for what it cannot answer;
3. drops the replicas that failed a call from the configuration with
   ``without_errors`` and brings them back with ``|``.

Run it::

    python -m examples.reshape
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc loads: no transport chatter

import asyncio
import sys
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from examples import kv_pb2, kv_pb2_grpc
from examples.kv_gorums import KVConfiguration
from gorums_mw import CallInfo, Node, NodeReply, QuorumCallError, System
from gorums_mw.testing import LocalReplicas

REPLICAS = 5
SLOW = {4: 0.08, 5: 0.05}
"""Seconds each slow replica waits before answering."""
KEYS = [f"key-{i}" for i in range(12)]


def home(key: str) -> int:
    """The replica that holds ``key`` (a stable hash of the key)."""
    return zlib.crc32(key.encode()) % REPLICAS + 1


class Shard(kv_pb2_grpc.KVServicer):
    """One replica's share of the keys."""

    def __init__(self, replica: int) -> None:
        self.replica = replica
        self.failing = False

    async def Get(self, request: kv_pb2.Keys, context: Any) -> kv_pb2.Values:
        await asyncio.sleep(SLOW.get(self.replica, 0.0))
        if self.failing:
            raise RuntimeError(f"replica {self.replica} is failing")
        found = {key: f"value of {key}" for key in request.keys if home(key) == self.replica}
        return kv_pb2.Values(values=found, replica=self.replica)


async def by_home(
    call: CallInfo[kv_pb2.Keys], replies: AsyncIterator[NodeReply[kv_pb2.Values]]
) -> AsyncIterator[NodeReply[kv_pb2.Values]]:
    """A call interceptor: each node is asked only for the keys it holds."""

    def keys_of(request: kv_pb2.Keys, node: Node) -> kv_pb2.Keys | None:
        mine = [key for key in request.keys if home(key) == node.id]
        return kv_pb2.Keys(keys=mine) if mine else None  # None: not asked at all

    call.map_request(keys_of)
    async for answer in replies:
        yield answer


def everyone_answered(replies: Mapping[int, kv_pb2.Values]) -> dict[int, kv_pb2.Values] | None:
    """A quorum function: done once the replicas holding the batch's keys all answered."""
    wanted = {home(key) for key in KEYS}
    return dict(replies) if wanted <= replies.keys() else None


async def main() -> int:
    shards: dict[int, Shard] = {}

    def setup(system: System) -> None:
        shards[system.id] = Shard(system.id)
        system.add_servicer(kv_pb2_grpc.add_KVServicer_to_server, shards[system.id])

    async with LocalReplicas(REPLICAS, setup) as replicas:
        await replicas.wait_full()
        config = replicas[1].config()
        kv = KVConfiguration(config)

        print("1. the fastest quorum")
        for _ in range(5):
            await kv.Get(kv_pb2.Keys(), quorum=len(config), timeout=5)
        for node in config:
            print(f"   replica {node.id}: latency {(node.latency or 0) * 1e3:.1f} ms")
        by_latency = config.sorted_by(lambda node: node.latency)
        fastest = by_latency.remove(*by_latency.ids[config.majority() :])
        print(f"   fastest majority: {list(fastest.ids)} (of {list(config.ids)})")
        replies = await KVConfiguration(fastest).Get(kv_pb2.Keys(), quorum=len(fastest), timeout=5)
        print(f"   a call to them answered by {sorted(replies)}")

        print("2. a batch of keys, sharded by node")
        batch = kv_pb2.Keys(keys=KEYS)
        found = await kv.Get(
            batch, quorum_function=everyone_answered, interceptors=[by_home], timeout=5
        )
        values = {key: value for reply in found.values() for key, value in reply.values.items()}
        for replica, reply in sorted(found.items()):
            print(f"   replica {replica} answered {sorted(reply.values)}")
        print(f"   {len(values)} of {len(KEYS)} keys found")

        print("3. dropping failed replicas, bringing them back")
        shards[2].failing = True
        try:
            await kv.Get(kv_pb2.Keys(), quorum=len(config), timeout=5)
        except QuorumCallError as error:
            healthy = config.without_errors(error)
            print(f"   replica 2 failed: calling {list(healthy.ids)} instead")
        else:
            print("   every replica answered, which should not happen here")
            return 1
        shards[2].failing = False
        back = healthy | config  # replica 2 works again: the whole configuration
        replies = await KVConfiguration(back).Get(kv_pb2.Keys(), quorum=len(back), timeout=5)
        print(f"   replica 2 is back: {sorted(replies)} answered")
        return 0 if len(values) == len(KEYS) and sorted(replies) == list(config.ids) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
