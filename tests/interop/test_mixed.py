"""Mixed replica sets: Go Gorums ``gorums.System`` replicas and gorums-mw ``System``s.

Every replica must see all three in its configuration, reach all three with
a quorum call, and know who calls it. Go's side is read from the
``gorums-go-peer replica`` reports: ``Config()`` (the peers that dialed it,
plus itself) and ``OutboundConfig()`` (the ones it dialed), and a
``__whoami__`` quorum call over each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gorums_mw import Configuration, System, with_nodes
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw.testing import free_ports
from tests.interop.conftest import StartGo
from tests.interop.goproc import GoPeer
from tests.interop.proto import storage_pb2_grpc
from tests.interop.storage import READ_QC, WHOAMI, ReadRequest, ReadResponse, Storage
from tests.reliability.replica_proc import node_args

IDS = (1, 2, 3)
SETTLE = 1.5
"""Seconds the Go replicas wait for their peers before they report."""


def over_own_streams(system: System, go_ids: Sequence[int]) -> bool:
    """Every replica is connected, and each Go replica over the stream we dialed."""
    config = system.config()
    if config.ids != IDS:
        return False
    for node in config:
        if node.id in go_ids:
            channel = node.channel
            if not isinstance(channel, StreamEndpoint) or channel.accepted:
                return False
    return True


async def start_mixed(
    go_ids: Sequence[int], start_go: StartGo, *extra: str
) -> tuple[list[System], list[GoPeer]]:
    """Start the Python replicas, then the Go ones (all dial every other)."""
    nodes = {
        node_id: f"127.0.0.1:{port}"
        for node_id, port in zip(IDS, free_ports(len(IDS)), strict=True)
    }
    systems = []
    for node_id in IDS:
        if node_id not in go_ids:
            system = System(node_id, with_nodes(nodes))
            storage = Storage(node_id, system.config)
            system.add_servicer(storage_pb2_grpc.add_StorageServicer_to_server, storage)
            systems.append(system)
            await system.start()
    spec = node_args(nodes)
    args = ("--nodes", spec, "--settle", str(SETTLE), *extra)
    gos = await asyncio.gather(*(start_go("replica", "--id", str(i), *args) for i in go_ids))
    return systems, list(gos)


async def whoami(config: Configuration) -> dict[int, str]:
    """Every node's ``__whoami__`` answer."""
    replies = await config.quorum_call(
        READ_QC, ReadRequest(key=WHOAMI), ReadResponse, quorum=len(IDS), timeout=5
    )
    return {node_id: reply.value for node_id, reply in replies.items()}


def impl(node_id: int, go_ids: Sequence[int]) -> str:
    return "go" if node_id in go_ids else "py"


@pytest.mark.parametrize(
    "go_ids",
    [pytest.param((1, 3), id="go1-py2-go3"), pytest.param((2,), id="py1-go2-py3")],
)
async def test_mixed_replicas_see_and_call_each_other(
    go_ids: tuple[int, ...], start_go: StartGo
) -> None:
    systems, gos = await start_mixed(go_ids, start_go)
    try:
        for system in systems:
            # All three, and the Go replicas over our own streams (Go keeps both).
            await system.wait_for_config(lambda _, s=system: over_own_streams(s, go_ids), 10)
            assert await whoami(system.config()) == {
                node_id: f"server={node_id} caller={system.id} impl={impl(node_id, go_ids)}"
                for node_id in IDS
            }
        for go in gos:
            report = await go.reports(timeout=SETTLE + 10)
            me = report["config"]["id"]
            assert report["config"]["inbound_config"] == list(IDS), go.lines
            assert report["config"]["outbound_config"] == list(IDS), go.lines
            assert report["config"]["client_config"] == []
            for kind in ("inbound_qc", "outbound_qc"):
                values = report[kind]["replies"]
                assert sorted(values) == [str(i) for i in IDS], (kind, values)
                for node_id in IDS:
                    value = values[str(node_id)]
                    if node_id == me:
                        caller = "-"  # itself, in process
                    elif node_id not in go_ids or kind == "outbound_qc":
                        caller = str(me)  # our handlers, or Go on a stream it accepted
                    else:
                        caller = "-"  # Go on a stream it dialed: no caller (upstream)
                    want = f"server={node_id} caller={caller} impl={impl(node_id, go_ids)}"
                    assert value == want, (me, kind, values)
    finally:
        await asyncio.gather(*(system.stop() for system in systems))


async def test_go_replica_sending_gorums_addr_counts_us(start_go: StartGo) -> None:
    go_ids = (1,)
    systems, gos = await start_mixed(go_ids, start_go, "--send-addr")
    try:
        report = await gos[0].reports(timeout=SETTLE + 10)
        assert report["config"]["inbound_config"] == list(IDS), gos[0].lines
    finally:
        await asyncio.gather(*(system.stop() for system in systems))
