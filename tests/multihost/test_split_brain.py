"""A partitioned minority never decides: quorums are sized by membership, not by liveness.

Three ``System`` replicas on three hosts, configured by IP; host 3 is cut
off by blackhole routes both ways (packets dropped silently). Once each side
has dropped the other from its configuration, a call with the default
quorum (a majority of the three configured replicas) fails on replica 3
alone and succeeds on the majority; after the heal, every replica is back
in every configuration and replica 3 decides again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.multihost import netns
from tests.multihost._procs import Replica, ip_nodes

CONNECT_TIMEOUT = 15.0
"""Seconds for started replicas to see each other (dialer backoff is at most 0.25 s)."""
LEAVE_TIMEOUT = 10.0
"""Seconds for each side to drop the other: the keepalive bound (0.5 s + 0.5 s) plus slack
for a loaded 2-core machine."""
REJOIN_TIMEOUT = 10.0
"""Seconds after the heal for every replica to be back: one reconnect backoff (0.25 s) and
a connect, with the same slack."""


@pytest.fixture
async def replicas(network: netns.Network) -> AsyncIterator[list[Replica]]:
    """Replica N on host N, configured by IP, started; all are killed after the test."""
    group = [Replica(network, host, host.index, ip_nodes(network)) for host in network.hosts]
    try:
        for replica in group:
            await replica.start()
        for replica in group:
            await replica.wait_config((1, 2, 3), CONNECT_TIMEOUT)
        yield group
    finally:
        for replica in group:
            await replica.stop()


@pytest.mark.timeout(45)
async def test_a_cut_off_minority_never_decides_by_default(
    network: netns.Network, replicas: list[Replica]
) -> None:
    r1, r2, r3 = replicas
    h1, h2, h3 = network.hosts

    await network.partition([h3], [h1, h2])
    await r1.wait_config((1, 2), LEAVE_TIMEOUT)
    await r2.wait_config((1, 2), LEAVE_TIMEOUT)
    await r3.wait_config((3,), LEAVE_TIMEOUT)

    minority = await r3.default_quorum()
    assert minority.startswith("quorum-failed QuorumCallError"), minority
    assert await r1.default_quorum() == "quorum 1,2"
    assert await r2.default_quorum() == "quorum 1,2"

    await network.heal()
    for replica in replicas:
        await replica.wait_config((1, 2, 3), REJOIN_TIMEOUT)
    assert await r3.default_quorum() in ("quorum 1,3", "quorum 2,3", "quorum 1,2,3")
