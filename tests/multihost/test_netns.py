"""The namespace harness itself: hosts reach each other, names move, nothing is left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import eventually
from tests.multihost import netns
from tests.multihost._procs import ROOT, Child

# Resolves the name given on each stdin line, prints "<name> <ip>", and connects
# to <ip>:port when asked ("connect <ip> <port>"), printing "connected <my ip>".
PROBE = "tests.multihost._probe"


@pytest.mark.timeout(30)
async def test_hosts_reach_each_other_and_see_their_own_names(network: netns.Network) -> None:
    h1, h2, _ = network.hosts
    network.publish({"server.test": h1.ip})
    server = await Child.start(network, h1, "server", PROBE, "listen", h1.ip, "9001")
    client = await Child.start(network, h2, "client", PROBE)
    try:
        await server.expect("listening", 10)
        resolved = await client.ask("resolve server.test", ("resolved ",))
        assert resolved == f"resolved server.test {h1.ip}"
        connected = await client.ask(f"connect {h1.ip} 9001", ("connected ", "error "))
        assert connected == f"connected {h2.ip}"  # the server sees host 2's own address
        assert await server.expect(lambda line: line.startswith("accepted "), 5) == (
            f"accepted {h2.ip}"
        )

        # The name moves: a running process sees the new hosts file at once.
        new_ip = await network.move(h1)
        network.publish({"server.test": new_ip})
        assert await client.ask("resolve server.test", ("resolved ",)) == (
            f"resolved server.test {new_ip}"
        )
        unknown = await client.ask("resolve nowhere.test", ("resolved ", "error "))
        assert unknown.startswith("error ")
    finally:
        for child in (server, client):
            await child.kill()
            child.close()


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("require_netns")
async def test_nothing_is_left_behind() -> None:
    net = netns.Network(2)
    async with net:
        mine = [net.switch, *(host.netns for host in net.hosts)]
        assert netns.list_namespaces(net.name) == sorted(mine)
        assert all(host.hosts_file.is_file() for host in net.hosts)
        sleeper = await net.spawn(net.hosts[0], sys.executable, "-c", "input()", stdin=-1)
    assert sleeper.returncode is not None  # killed and reaped by aclose()
    assert netns.list_namespaces(net.name) == []
    assert not any((netns.NETNS_ETC / name).exists() for name in mine)


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("require_netns")
async def test_a_failed_create_removes_what_it_made() -> None:
    net = netns.Network(2)
    net.hosts[1].ip = net.hosts[0].ip + "/99"  # an address ip refuses, halfway through
    with pytest.raises(netns.NetnsError, match="addr add"):
        await net.create()
    assert netns.list_namespaces(net.name) == []


@pytest.mark.timeout(30)
async def test_blocks_and_links_cut_hosts_apart_until_healed(network: netns.Network) -> None:
    h1, h2, h3 = network.hosts
    server = await Child.start(network, h1, "server", PROBE, "listen", h1.ip, "9001")
    client = await Child.start(network, h2, "client", PROBE)
    connect = f"connect {h1.ip} 9001"
    try:
        await server.expect("listening", 10)

        await network.partition([h1], [h2, h3], "prohibit")  # refused at once, both ways
        assert (
            await client.ask(connect, ("connected ", "error "))
            == "error [Errno 13] Permission denied"
        )
        await network.heal()
        assert await client.ask(connect, ("connected ", "error ")) == f"connected {h2.ip}"

        await network.block(h1, h2)  # one way: the SYN arrives, the SYN-ACK is dropped
        assert await client.ask(connect, ("connected ", "error ")) == "error timed out"
        await network.heal()
        assert await client.ask(connect, ("connected ", "error ")) == f"connected {h2.ip}"

        await network.set_link(h2, up=False)
        assert await client.ask(connect, ("connected ", "error ")) == (
            "error [Errno 101] Network is unreachable"
        )
        await network.heal()
        assert await client.ask(connect, ("connected ", "error ")) == f"connected {h2.ip}"
        assert "blocks=0 down=0" in repr(network)
    finally:
        for child in (server, client):
            await child.kill()
            child.close()


# Makes a network, starts a child in it that waits for a signal, prints the network's name
# and the child's pid once the child runs Python (setpriv has set its death signal then), waits.
ORPHAN_MAKER = """
import asyncio, sys
from tests.multihost import netns

async def main():
    net = netns.Network(1)
    await net.create()
    pause = "print('up', flush=True); import signal; signal.pause()"
    child = await net.spawn(net.hosts[0], sys.executable, "-c", pause, stdout=-1)
    await child.stdout.readline()
    print(net.name, child.pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.timeout(30)
@pytest.mark.usefixtures("require_netns")
async def test_children_die_with_a_parent_killed_without_cleanup() -> None:
    if not netns._DIE_WITH_PARENT:
        pytest.skip("util-linux's setpriv is not installed")
    maker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ORPHAN_MAKER, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert maker.stdout is not None
    try:
        name, pid = (await asyncio.wait_for(maker.stdout.readline(), 20)).decode().split()
    finally:
        maker.kill()  # SIGKILL: no aclose
        await maker.wait()
    try:  # the kernel delivers the death signal; nothing announces the end of a non-child
        await eventually(lambda: _state(pid) in ("gone", "Z"), timeout=5)
    finally:
        if _state(pid) not in ("gone", "Z"):
            os.kill(int(pid), signal.SIGKILL)  # the orphan, when the test failed
        assert netns.sweep(name)  # the namespaces, though, are left for a sweep


def _state(pid: str) -> str:
    """The process's state letter from /proc, or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return "gone"
