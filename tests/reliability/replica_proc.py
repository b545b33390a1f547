"""A replica in its own process, for fault tests: ``python -m tests.reliability.replica_proc``.

It runs a ``System`` with an Echo servicer and reports on stdout, one line each:

- ``ready <id>`` once its server listens and it dials the others;
- ``config <id>,<id>,...`` each time its configuration changes (the first
  line right after ``ready``), so a test can watch what it sees;
- ``nodes <id>=<addr>,...`` before ``ready``: the known nodes as ``with_nodes``
  kept them (so a test can see whether names were kept or resolved).

It answers commands, one per line on stdin:

- ``config?`` → ``config-now <id>,...``: its configuration at that moment;
- ``quorum`` → ``quorum <id>,...`` (the replica IDs that answered an
  ``echo.Echo.Say`` quorum call on every node of its configuration), or
  ``quorum-failed <error>``;
- ``default-quorum`` → the same for a call with the default quorum (no
  ``quorum=``), bounded by 2 s.

It stops cleanly when its stdin closes (the test process ended) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Mapping
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from gorums_mw import Backoff, Configuration, Keepalive, System, current_peer, with_nodes
from tests import echo_pb2, echo_pb2_grpc

SAY = "echo.Echo.Say"


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


def _ids(config: Configuration) -> str:
    return ",".join(str(node_id) for node_id in config.ids)


def _report(config: Configuration) -> None:
    _say("config " + _ids(config))


_ECHO = echo_pb2.EchoRequest(text="quorum")


async def _quorum(call: Awaitable[Mapping[int, Any]]) -> None:
    """Report which replicas answered ``call``, or how it failed."""
    try:
        replies = await call
    except Exception as exc:
        _say(f"quorum-failed {type(exc).__name__}: {exc}".replace("\n", " "))
    else:
        _say("quorum " + ",".join(str(reply.node_id) for _, reply in sorted(replies.items())))


async def _command(system: System, line: str) -> None:
    """Answer one stdin command (see the module docstring)."""
    if line == "config?":
        _say("config-now " + _ids(system.config()))
    elif line == "quorum":
        config = system.config()
        await _quorum(
            config.quorum_call(SAY, _ECHO, echo_pb2.EchoReply, quorum=len(config), timeout=5)
        )
    elif line == "default-quorum":
        await _quorum(system.config().quorum_call(SAY, _ECHO, echo_pb2.EchoReply, timeout=2))
    elif line:
        _say(f"unknown-command {line}")


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--nodes", type=parse_nodes, required=True)
    parser.add_argument("--keepalive", type=float, nargs=2, default=(0.5, 0.5))
    parser.add_argument("--backoff-max", type=float, default=0.25)
    args = parser.parse_args(argv)

    nodes = with_nodes(args.nodes)
    system = System(
        args.id,
        nodes,
        keepalive=Keepalive(*args.keepalive),
        backoff=Backoff(initial=0.02, maximum=args.backoff_max),
        on_config_change=_report,
    )
    system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, Echo(args.id))  # type: ignore[abstract]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    pending = bytearray()
    commands: set[asyncio.Task[None]] = set()

    def read_stdin() -> None:
        data = os.read(0, 4096)
        if not data:
            loop.remove_reader(0)
            stop.set()
            return
        pending.extend(data)
        while (end := pending.find(b"\n")) >= 0:
            line = pending[:end].decode(errors="replace").strip()
            del pending[: end + 1]
            task = loop.create_task(_command(system, line))
            commands.add(task)
            task.add_done_callback(commands.discard)

    loop.add_reader(0, read_stdin)
    async with system:
        _say("nodes " + node_args(dict(nodes.nodes)))
        _say(f"ready {args.id}")
        _report(system.config())
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
