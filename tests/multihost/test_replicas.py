"""Replicas on separate hosts (network namespaces), each a real process with its own IP.

Replica N runs ``tests.reliability.replica_proc`` on host N and listens on
``<host N's IP>:9001``. Every wait reads the processes' report lines with a
bound; nothing sleeps. The tests configured by DNS names (names served by
each host's /etc/hosts) wait for the library to accept names in
``with_nodes`` without resolving them at construction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from tests.multihost import netns
from tests.multihost._procs import PORT, Child, Replica, dns, ip_nodes, name, name_nodes

ALL = (1, 2, 3)
CONNECT_TIMEOUT = 15.0
"""Seconds for replicas that are up to see each other (dialer backoff is at most 0.25 s)."""
LEAVE_TIMEOUT = 10.0
"""Seconds for a killed replica to leave (its sockets close at once; keepalive bound 1 s)."""
REJOIN_TIMEOUT = 20.0
"""Seconds for a replica restarted on a new IP to be in every configuration again."""
CLAIM_TIMEOUT = 20.0
"""Seconds for the claim process: start-up plus three calls of at most 5 s each."""


ReplicaFactory = Callable[[dict[int, str]], dict[int, Replica]]


@pytest.fixture
async def replicas(network: netns.Network) -> AsyncIterator[ReplicaFactory]:
    """Make replica N on host N for each of ``nodes`` (not started); all are killed after."""
    made: list[Replica] = []

    def make(nodes: dict[int, str]) -> dict[int, Replica]:
        new = {host.index: Replica(network, host, host.index, nodes) for host in network.hosts}
        made.extend(new.values())
        return new

    try:
        yield make
    finally:
        for replica in made:
            await replica.stop()


async def start(replicas: Iterable[Replica]) -> None:
    for replica in replicas:
        await replica.start()


async def wait_config(replicas: Iterable[Replica], ids: tuple[int, ...], timeout: float) -> None:
    for replica in replicas:
        await replica.wait_config(ids, timeout)


async def claim(net: netns.Network, host: netns.Host, target: str, *claims: str) -> dict[str, str]:
    """Run ``claim_proc`` on ``host`` against ``target``; its lines keyed by what they report."""
    child = await Child.start(net, host, "claim", "tests.multihost.claim_proc", target, *claims)
    try:
        lines = await child.finish(CLAIM_TIMEOUT)
    finally:
        await child.kill()
        child.close()
    assert lines[-1:] == ["done"], child.report()
    results: dict[str, str] = {}
    for line in lines[:-1]:
        if line.startswith("plain "):
            results["plain"] = line.removeprefix("plain ")
        else:
            _, number, kind, outcome = line.split(" ", 3)
            results[f"{number} {kind}"] = outcome
    return results


def assert_no_config_with(replica: Replica, node_id: int) -> None:
    """Replica never reported a configuration holding ``node_id``."""
    reported = [line for line in replica.running.lines if line.startswith("config")]
    for line in reported:
        assert str(node_id) not in line.split()[1].split(","), reported


# --- IP literals -------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_ip_literal_configuration_across_hosts(
    network: netns.Network, replicas: ReplicaFactory
) -> None:
    group = replicas(ip_nodes(network))
    await start(group.values())
    for replica in group.values():
        assert replica.known == ip_nodes(network)
    await wait_config(group.values(), ALL, CONNECT_TIMEOUT)
    for replica in group.values():
        assert await replica.quorum() == "quorum 1,2,3"


@pytest.mark.timeout(30)
async def test_spoofed_claim_from_another_host_is_refused(
    network: netns.Network, replicas: ReplicaFactory
) -> None:
    h1, h2, h3 = network.hosts
    group = replicas(ip_nodes(network))  # replica 3 stays down: its address is free to claim
    await start([group[1], group[2]])
    await wait_config([group[1], group[2]], (1, 2), CONNECT_TIMEOUT)

    results = await claim(network, h2, f"{h1.ip}:{PORT}", f"gorums-addr={h3.ip}:{PORT}")

    assert results["plain"] == "OK"  # host 2 reaches replica 1: the refusals are about identity
    for kind in ("unary", "stream"):
        code, _, details = results[f"1 {kind}"].partition(" ")
        assert code == "UNAUTHENTICATED", results
        assert f"{h3.ip}:{PORT}" in details and h2.ip in details, details
    assert await group[1].config_now() == (1, 2)
    assert_no_config_with(group[1], 3)


# --- DNS names ---------------------------------------------------------------------------


def assert_names_kept(group: Iterable[Replica], net: netns.Network) -> None:
    """Each replica kept the configured names (resolved later, not at construction)."""
    for replica in group:
        assert replica.known == name_nodes(net)


@pytest.mark.timeout(30)
async def test_name_configuration_across_hosts(
    network: netns.Network, replicas: ReplicaFactory
) -> None:
    network.publish(dns(network))
    group = replicas(name_nodes(network))
    await start(group.values())
    assert_names_kept(group.values(), network)
    await wait_config(group.values(), ALL, CONNECT_TIMEOUT)
    for replica in group.values():
        assert await replica.quorum() == "quorum 1,2,3"


@pytest.mark.timeout(30)
async def test_replica_started_before_its_peers_names_exist(
    network: netns.Network, replicas: ReplicaFactory
) -> None:
    h1, _, _ = network.hosts
    network.set_names(h1, {name(1): h1.ip})  # host 1 knows only its own name
    group = replicas(name_nodes(network))
    await group[1].start()
    assert_names_kept([group[1]], network)
    assert await group[1].config_now() == (1,)

    network.publish(dns(network))  # the peers' names appear
    await start([group[2], group[3]])
    await wait_config(group.values(), ALL, CONNECT_TIMEOUT)
    assert await group[1].quorum() == "quorum 1,2,3"


@pytest.mark.timeout(30)
async def test_replica_restarted_on_a_new_ip_rejoins_under_its_name(
    network: netns.Network, replicas: ReplicaFactory
) -> None:
    _, _, h3 = network.hosts
    network.publish(dns(network))
    group = replicas(name_nodes(network))
    await start(group.values())
    assert_names_kept(group.values(), network)
    await wait_config(group.values(), ALL, CONNECT_TIMEOUT)

    await group[3].stop()
    await wait_config([group[1], group[2]], (1, 2), LEAVE_TIMEOUT)
    old_ip = h3.ip
    await network.move(h3)
    network.publish(dns(network))  # host3.test now names the new IP, on every host
    assert h3.ip != old_ip
    await group[3].start()
    await wait_config(group.values(), ALL, REJOIN_TIMEOUT)
    for replica in group.values():
        assert await replica.quorum() == "quorum 1,2,3"


@pytest.mark.timeout(30)
async def test_claim_of_another_hosts_name_is_refused(
    network: netns.Network, replicas: ReplicaFactory
) -> None:
    _, h2, _ = network.hosts
    network.publish(dns(network))
    group = replicas(name_nodes(network))  # replica 3 stays down
    await start([group[1], group[2]])
    assert_names_kept([group[1], group[2]], network)
    await wait_config([group[1], group[2]], (1, 2), CONNECT_TIMEOUT)

    results = await claim(
        network,
        h2,
        f"{name(1)}:{PORT}",
        "gorums-node-id=3",  # upstream Go Gorums' dialect: names the node, not an address
        f"gorums-addr={name(3)}:{PORT}",  # the configured name: checked against its cached IPs
    )

    assert results["plain"] == "OK"
    for kind in ("unary", "stream"):
        assert results[f"1 {kind}"].startswith("UNAUTHENTICATED"), results
        assert results[f"2 {kind}"].startswith("UNAUTHENTICATED"), results
    assert await group[1].config_now() == (1, 2)
    assert_no_config_with(group[1], 3)
