"""Peer identity in action: one server, two replicas, an external client, a spoofer.

Run: ``python -m examples.identity``

The server attaches ``PeerIdentityInterceptor`` to an ordinary Greeter
servicer. Replicas 2 and 3 identify themselves with
``ClientIdentityInterceptor``; while they hold a ``Chat`` stream they are in
the server's live configuration. An external client is served as ID 0, and
a client that claims an address its connection does not come from is
refused. Every decision is printed as a span.
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # keep grpc's transport log out of the demo
from collections.abc import AsyncIterator
from typing import Any

from grpc import aio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from examples import hello_pb2, hello_pb2_grpc
from gorums_mw import Configuration, InboundManager, current_peer, with_nodes
from gorums_mw.interceptors import ClientIdentityInterceptor, PeerIdentityInterceptor
from gorums_mw.testing import free_ports

CHAT = "/hello.Greeter/Chat"


class Greeter(hello_pb2_grpc.GreeterServicer):
    """An ordinary servicer: it only asks ``current_peer()`` who is calling."""

    async def SayHello(self, request: Any, context: Any) -> hello_pb2.HelloReply:
        peer = current_peer()
        who = f"node {peer.id}" if peer.is_replica else "an external client (ID 0)"
        return hello_pb2.HelloReply(message=f"hello {request.name}, you are {who}")

    async def Chat(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[hello_pb2.HelloReply]:
        async for request in request_iterator:
            yield hello_pb2.HelloReply(message=f"{request.name} from node {current_peer().id}")


def span_line(span: ReadableSpan) -> str:
    attributes = dict(span.attributes or {})
    keys = (
        "gorums.peer.id",
        "gorums.decision",
        "gorums.peer.claimed_address",
        "gorums.config.size",
    )
    shown = " ".join(
        f"{key.rpartition('.')[2]}={attributes[key]!r}" for key in keys if key in attributes
    )
    return f"  span {span.name}: {shown}\n"


def print_config(config: Configuration) -> None:
    print(f"  live configuration: {list(config.ids)}")


def open_chat(channel: aio.Channel) -> Any:
    """Open a Chat stream to write and read (grpc.aio's reader/writer API)."""
    return hello_pb2_grpc.GreeterStub(channel).Chat()  # type: ignore[call-arg]


async def greet(target: str, name: str, claimed: str | None) -> None:
    interceptors = ClientIdentityInterceptor(claimed) if claimed else None
    async with aio.insecure_channel(target, interceptors=interceptors) as channel:
        stub = hello_pb2_grpc.GreeterStub(channel)
        try:
            reply = await stub.SayHello(hello_pb2.HelloRequest(name=name), timeout=5)
            print(f"{name}: {reply.message}")
        except aio.AioRpcError as error:
            print(f"{name}: refused with {error.code().name}: {error.details()}")


async def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=span_line)))
    ports = free_ports(3)
    nodes = {node_id: f"127.0.0.1:{port}" for node_id, port in zip((1, 2, 3), ports, strict=True)}
    manager = InboundManager(
        1, with_nodes(nodes), on_config_change=print_config, tracer_provider=provider
    )
    server = aio.server(interceptors=[PeerIdentityInterceptor(manager, register_methods=[CHAT])])
    hello_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    server.add_insecure_port(nodes[1])
    await server.start()
    target = nodes[1]
    print(f"server: node 1 on {target}, knows {nodes}")

    await greet(target, "replica-2", nodes[2])
    await greet(target, "external", None)
    await greet(target, "spoofer", "192.0.2.7:9003")

    print("replicas 2 and 3 open Chat streams:")
    channels = [
        aio.insecure_channel(target, interceptors=ClientIdentityInterceptor(nodes[node_id]))
        for node_id in (2, 3)
    ]
    chats = [open_chat(channel) for channel in channels]
    for node_id, chat in zip((2, 3), chats, strict=True):
        await chat.write(hello_pb2.HelloRequest(name=f"hi from {node_id}"))
        print(f"  chat: {(await chat.read()).message}")
    await manager.wait_for_config(lambda config: config.ids == (2, 3), timeout=5)

    print("replica 2 leaves:")
    chats[0].cancel()
    await manager.wait_for_config(lambda config: config.ids == (3,), timeout=5)
    print("replica 2 comes back:")
    chats[0] = open_chat(channels[0])
    await chats[0].write(hello_pb2.HelloRequest(name="back again"))
    await chats[0].read()
    final = await manager.wait_for_config(lambda config: config.ids == (2, 3), timeout=5)
    print(f"final: {manager!r}, configuration {list(final.ids)}")

    for chat in chats:
        chat.cancel()
    for channel in channels:
        await channel.close(None)
    await server.stop(None)
    manager.close()
    provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
