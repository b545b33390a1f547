"""A tiny grpc.aio call through an installed gorums-mw: ``python smoke.py``.

Uses only the public API and grpc's generic handlers (no generated code), so
it runs in any environment where the wheel and its dependencies are installed.
The server knows nodes 1 and 2; the client claims node 2's address and the
handler must see it as node 2. Prints where gorums_mw was imported from.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc import aio

import gorums_mw
from gorums_mw import InboundManager, current_peer, with_nodes
from gorums_mw.interceptors import ClientIdentityInterceptor, PeerIdentityInterceptor
from gorums_mw.testing import free_ports


async def whoami(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
    return str(current_peer().id).encode()


async def main() -> None:
    server_port, client_port = free_ports(2)
    nodes = with_nodes({1: f"127.0.0.1:{server_port}", 2: f"127.0.0.1:{client_port}"})
    server = aio.server(interceptors=[PeerIdentityInterceptor(InboundManager(1, nodes))])
    handler = grpc.unary_unary_rpc_method_handler(whoami)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("smoke", {"Who": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{server_port}")
    await server.start()
    try:
        async with aio.insecure_channel(
            f"127.0.0.1:{server_port}",
            interceptors=ClientIdentityInterceptor(f"127.0.0.1:{client_port}"),
        ) as channel:
            who = channel.unary_unary(
                "/smoke/Who", request_serializer=bytes, response_deserializer=bytes
            )
            reply = await who(b"", timeout=10)
    finally:
        await server.stop(None)
    assert reply == b"2", reply
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    print(f"python {version}: the handler saw peer 2; gorums_mw from {gorums_mw.__file__}")


if __name__ == "__main__":
    asyncio.run(main())
