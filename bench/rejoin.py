"""How long a replica that comes back takes to be in every configuration again.

    sudo .venv/bin/python -m bench.rejoin [--trials 5]

Three replica processes (``tests.reliability.replica_proc``: reconnect
backoff up to 0.25 s) on three hosts: Linux network namespaces made with
the multi-host test harness (needs root and iproute2). Replica 3 is killed
and started again, and the time from its ``ready`` line to every replica
reporting the full configuration is measured, for

- ``same IP``: configured by IP literal, back on the same IP;
- ``moved``: configured by DNS name (hosts files), back on a new IP under
  its name: the others refuse its first claims (their cache has the old IP),
  refresh the name (at most once per ``NameResolution.min_interval``, 1 s by
  default) and accept its next attempt.

The bound is one name refresh plus one reconnect backoff (plus the time the
name takes to resolve and a stream to open).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from bench._common import machine, median, print_table, spread
from tests.multihost import netns
from tests.multihost._procs import Replica, dns, ip_nodes, name_nodes

ALL = (1, 2, 3)


async def trial(moved: bool) -> float:
    async with netns.Network(3) as network:
        hosts = {host.index: host for host in network.hosts}
        network.publish(dns(network))
        nodes = name_nodes(network) if moved else ip_nodes(network)
        group = {i: Replica(network, host, i, nodes) for i, host in hosts.items()}
        try:
            for replica in group.values():
                await replica.start()
            for replica in group.values():
                await replica.wait_config(ALL, 20)
            await group[3].stop()
            for i in (1, 2):
                await group[i].wait_config((1, 2), 20)
            if moved:
                await network.move(hosts[3])
                network.publish(dns(network))
            started = time.monotonic()
            await group[3].start()
            for replica in group.values():
                await replica.wait_config(ALL, 30)
            return time.monotonic() - started
        finally:
            for replica in group.values():
                await replica.stop()


async def drive(trials: int) -> None:
    reason = netns.unavailable_reason()
    if reason is not None:
        raise SystemExit(f"bench.rejoin needs network namespaces: {reason}")
    results: dict[str, list[float]] = {"same IP": [], "moved": []}
    for index in range(trials):
        for label, moved in (("same IP", False), ("moved", True)):
            results[label].append(await trial(moved))
        print(f"trial {index + 1}/{trials} done", flush=True)

    def show(values: Sequence[float]) -> str:
        return f"{median(values):.2f} ({spread(values)})"

    print(machine())
    print_table(
        f"Seconds from the restarted replica's start to every full configuration ({trials} trials)",
        ["replica 3 comes back", "median (min-max)"],
        [[label, show(values)] for label, values in results.items()],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    asyncio.run(drive(args.trials))


if __name__ == "__main__":
    main()
