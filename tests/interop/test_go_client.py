"""A Go Gorums client against gorums-mw servers: upstream's own checks, all passing.

``gorums-go-peer check`` is a plain ``gorums.NewConfig`` client: it sends no
identity, so our replicas serve it as an external caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gorums_mw import System
from gorums_mw.testing import LocalReplicas
from tests.interop.conftest import StartGo
from tests.interop.proto import storage_pb2_grpc
from tests.interop.storage import Storage

CHECKS = (
    "WriteQC majority",
    "ReadQC all replies",
    "ReadQC majority",
    "quorum function newest-of-all",
    "WriteMulticast send",
    "WriteUnicast delivered",
    "unknown method RPC -> Unimplemented",
    "unknown method QC -> incomplete with Unimplemented",
    "handler error status",
    "message metadata entries",
    "ReadCorrectable majority",
)
"""Every check the Go client runs (besides one per node for RPCs and multicast)."""


def setup_storage(servicers: dict[int, Storage]) -> Callable[[System], None]:
    def setup(system: System) -> None:
        servicer = servicers[system.id] = Storage(system.id, system.config)
        system.add_servicer(storage_pb2_grpc.add_StorageServicer_to_server, servicer)

    return setup


async def test_go_client_checks_pass_against_gorums_mw_servers(start_go: StartGo) -> None:
    servicers: dict[int, Storage] = {}
    async with LocalReplicas(3, setup_storage(servicers)) as replicas:
        await replicas.wait_full(timeout=10)
        addrs = ",".join(system.address for system in replicas)
        check = await start_go("check", "--addrs", addrs, "--prefix", "go", ready=False)
        lines = await check.read_all(timeout=40)

    results = [line for line in lines if line.startswith(("PASS ", "FAIL "))]
    failed = [line for line in results if line.startswith("FAIL ")]
    assert not failed, "\n".join(lines)
    passed = [re.sub(r"^PASS go/([^:]*):.*$", r"\1", line) for line in results]
    assert set(CHECKS) <= set(passed), "\n".join(lines)
    # Go numbers the nodes of WithNodeList itself: count the per-node checks.
    assert sum(name.startswith("ReadRPC node ") for name in passed) == 3
    assert sum(name.startswith("WriteMulticast delivered node ") for name in passed) == 3
    assert lines[-1] == f"SUMMARY {len(results)} passed, 0 failed", "\n".join(lines)
    # The one-way and correctable calls reached our handlers (not just Go's own bookkeeping).
    assert all(s.values.get("mc", ("",))[0] == "m1" for s in servicers.values())
    assert sum(s.values.get("uc", ("",))[0] == "u1" for s in servicers.values()) == 1
