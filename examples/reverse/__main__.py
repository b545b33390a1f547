"""A server calling back to clients that cannot accept connections.

The server listens on a public address: an ordinary grpc.aio server with
``PeerIdentityInterceptor``, the NodeStream service and an
``InboundManager``. Each client dials it with ``client_peer=True`` and
serves its own ``reverse.Agent`` servicer over the stream it opened; the
clients listen on nothing. Once they are connected, the server runs a
quorum call over ``manager.client_config()`` and prints the replies: the
typed ``Report`` quorum call generated from ``reverse.proto``
(``examples/reverse_gorums.py``).

Run it::

    python -m examples.reverse
    python -m examples.reverse --clients 5
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc loads: no transport chatter

import argparse
import asyncio
import sys
from collections.abc import Sequence

from grpc import aio

from examples import reverse_pb2, reverse_pb2_grpc
from examples.reverse_gorums import AgentConfiguration
from gorums_mw import (
    HandlerRegistry,
    InboundManager,
    OutboundManager,
    add_node_stream_service,
    with_nodes,
)
from gorums_mw.interceptors import PeerIdentityInterceptor
from gorums_mw.testing import free_ports

NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


class Agent(reverse_pb2_grpc.AgentServicer):
    """A client's answer to the server: its name and a load figure."""

    def __init__(self, name: str, load: int) -> None:
        """Answer as ``name`` with ``load``."""
        self.name = name
        self.load = load

    async def Report(
        self, request: reverse_pb2.ReportRequest, context: aio.ServicerContext[object, object]
    ) -> reverse_pb2.ReportReply:
        """Answer the server's question."""
        print(f"client {self.name}: the server asks {request.question!r}", flush=True)
        return reverse_pb2.ReportReply(name=self.name, load=self.load)


def client(server_address: str, name: str, load: int) -> OutboundManager:
    """A client peer of the server: it dials out and serves ``Agent`` over that stream."""
    handlers = HandlerRegistry()
    reverse_pb2_grpc.add_AgentServicer_to_server(Agent(name, load), handlers)  # type: ignore[arg-type]
    return OutboundManager(with_nodes({1: server_address}), client_peer=True, handlers=handlers)


async def run(count: int) -> int:
    """Start the server and ``count`` clients; call the clients back; return the exit code."""
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    manager = InboundManager(1, with_nodes({1: address}))
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager)])
    add_node_stream_service(manager, server)
    server.add_insecure_port(address)
    await server.start()
    print(f"server: listening on {address}", flush=True)
    clients = [client(address, NAMES[i % len(NAMES)], 10 * (i + 1)) for i in range(count)]
    try:
        for each in clients:
            await each.start()
        config = await manager.wait_for_clients(lambda c: len(c) == count, timeout=10)
        print(f"server: {len(config)} client peers connected, IDs {list(config.ids)}", flush=True)
        quorum = count // 2 + 1
        agents = AgentConfiguration(config)
        question = reverse_pb2.ReportRequest(question="what is your load?")
        replies = await agents.Report(question, quorum=quorum, timeout=5)
        print(f"server: quorum call Agent.Report got {len(replies)} of {count} replies:")
        for node_id, reply in sorted(replies.items()):
            print(f"  client {node_id}: {reply.name} load={reply.load}")
        print(f"server: total load of the quorum: {sum(r.load for r in replies.values())}")
        return 0 if len(replies) >= quorum else 1
    finally:
        await server.stop(None)
        manager.close()
        for each in clients:
            await each.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and run; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.reverse",
        description="A server calling back to clients that cannot accept connections.",
    )
    parser.add_argument("--clients", type=int, default=3, help="client peers (1..8)")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= len(NAMES):
        parser.error(f"--clients must be 1..{len(NAMES)}")
    return asyncio.run(run(args.clients))


if __name__ == "__main__":
    sys.exit(main())
