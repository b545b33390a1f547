"""A replica in its own process, for fault tests: ``python -m tests.reliability.replica_proc``.

It runs a ``System`` with an Echo servicer and reports on stdout, one line each:

- ``ready <id>`` once its server listens and it dials the others;
- ``config <id>,<id>,...`` each time its configuration changes (the first
  line right after ``ready``), so a test can watch what it sees.

It stops cleanly when its stdin closes (the test process ended) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from gorums_mw import Backoff, Configuration, Keepalive, System, current_peer, with_nodes
from tests import echo_pb2, echo_pb2_grpc


class Echo(echo_pb2_grpc.EchoServicer):
    """Say answers with this replica's ID and the caller's."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id

    async def Say(self, request: Any, context: Any) -> Any:
        return echo_pb2.EchoReply(text=request.text, number=current_peer().id, node_id=self.node_id)


def parse_nodes(text: str) -> dict[int, str]:
    """``1=127.0.0.1:5001,2=127.0.0.1:5002`` → ``{1: ..., 2: ...}``."""
    nodes = {}
    for item in text.split(","):
        node_id, _, addr = item.partition("=")
        nodes[int(node_id)] = addr
    return nodes


def node_args(nodes: dict[int, str]) -> str:
    """The ``--nodes`` argument for ``nodes``."""
    return ",".join(f"{node_id}={addr}" for node_id, addr in sorted(nodes.items()))


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _report(config: Configuration) -> None:
    _say("config " + ",".join(str(node_id) for node_id in config.ids))


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--nodes", type=parse_nodes, required=True)
    parser.add_argument("--keepalive", type=float, nargs=2, default=(0.5, 0.5))
    parser.add_argument("--backoff-max", type=float, default=0.25)
    args = parser.parse_args(argv)

    system = System(
        args.id,
        with_nodes(args.nodes),
        keepalive=Keepalive(*args.keepalive),
        backoff=Backoff(initial=0.02, maximum=args.backoff_max),
        on_config_change=_report,
    )
    system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, Echo(args.id))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 4096) else None)
    async with system:
        _say(f"ready {args.id}")
        _report(system.config())
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
