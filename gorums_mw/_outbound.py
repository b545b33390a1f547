"""OutboundManager: dial nodes, keep one NodeStream to each, reconnect."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

import grpc
from grpc import aio
from opentelemetry import trace

from gorums_mw._address import normalize_addr
from gorums_mw._configuration import Configuration
from gorums_mw._node import Node
from gorums_mw._options import NodeListOption
from gorums_mw._peer import Peer
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._registrar import Cleanup
from gorums_mw._settings import Backoff, Keepalive
from gorums_mw._stream._endpoint import DEFAULT_SEND_BUFFER, StreamEndpoint
from gorums_mw._stream._registry import HandlerRegistry
from gorums_mw._stream._service import NODE_STREAM_PATH
from gorums_mw._tracing import Tracer
from gorums_mw.interceptors._server import GORUMS_ADDR_KEY

_log = logging.getLogger("gorums_mw")

Attach = Callable[[Node, StreamEndpoint], Cleanup]
Gate = Callable[[int], Awaitable[None]]

_STABLE_SECONDS = 1.0
"""A stream that lived this long resets the reconnect backoff."""


class OutboundManager:
    """Dials nodes and keeps one NodeStream open to each, reconnecting with backoff.

    Calls the other end makes back over a stream are served by ``handlers``.
    Use as an async context manager, or call ``start()`` and ``close()``.
    Calls must be made on the event loop that started it.

    Example::

        async with OutboundManager(with_nodes({1: "127.0.0.1:9001", 2: "127.0.0.1:9002"})) as mgr:
            await mgr.wait_connected(timeout=5)
            replies = await mgr.config().quorum_call("echo.Echo.Say", req, EchoReply)
    """

    def __init__(
        self,
        nodes: NodeListOption,
        *,
        my_addr: str | None = None,
        client_peer: bool = False,
        handlers: HandlerRegistry | None = None,
        send_buffer: int = DEFAULT_SEND_BUFFER,
        keepalive: Keepalive | None = None,
        backoff: Backoff | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        """Prepare to dial ``nodes``.

        Args:
            nodes: the nodes to dial, from ``with_nodes`` or ``with_node_list``.
            my_addr: the address this process listens on, sent as
                ``gorums-addr`` so servers know which replica is calling;
                None to dial as an external client.
            client_peer: announce this process as a client peer (no listening
                address) that servers may call back (``GORUMS_CLIENT_KEY``).
            handlers: serve the calls servers make back over the streams.
            send_buffer: messages each stream queues before senders wait.
            keepalive: keepalive settings; default ``Keepalive()``.
            backoff: reconnect delays; default ``Backoff()``.
            credentials: TLS channel credentials; default insecure.
            tracer_provider: where spans go; default the global provider.

        Raises:
            TypeError: ``nodes`` is not a node option.
            ValueError: ``my_addr`` is malformed, or given with ``client_peer``.
        """
        if not isinstance(nodes, NodeListOption):
            raise TypeError(f"nodes must come from with_nodes or with_node_list, got {nodes!r}")
        if my_addr is not None and client_peer:
            raise ValueError("a client peer has no listening address: pass my_addr or client_peer")
        metadata: list[tuple[str, str]] = []
        if my_addr is not None:
            metadata.append((GORUMS_ADDR_KEY, normalize_addr(my_addr)))
        if client_peer:
            metadata.append(("gorums-client", "1"))
        self._metadata = tuple(metadata)
        self._handlers = handlers
        self._send_buffer = send_buffer
        self._keepalive = keepalive or Keepalive()
        self._backoff = backoff or Backoff()
        self._credentials = credentials
        self._tracer = Tracer(tracer_provider)
        self._nodes = {nid: Node(nid, addr, self._tracer) for nid, addr in nodes.nodes.items()}
        self._config = Configuration._sorted(tuple(self._nodes.values()), self._tracer)
        self._attach: Attach = _attach_to_node
        self._gate: Gate | None = None
        self._channels: list[aio.Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._changed: asyncio.Event | None = None

    def __repr__(self) -> str:
        connected = [node.id for node in self._config if node.connected]
        return f"<OutboundManager nodes={list(self._nodes)} connected={connected}>"

    async def __aenter__(self) -> OutboundManager:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def config(self) -> Configuration:
        """The configuration of all dialed nodes (connected or not)."""
        return self._config

    def start(self) -> None:
        """Start dialing every node (idempotent)."""
        if self._tasks:
            return
        self._changed = asyncio.Event()
        for node in self._nodes.values():
            self._tasks.append(asyncio.create_task(self._keep_connected(node)))

    async def close(self) -> None:
        """Close every stream and channel; calls in flight fail with ``UNAVAILABLE``."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        channels, self._channels = self._channels, []
        await asyncio.gather(*(channel.close(None) for channel in channels))

    async def wait_connected(self, count: int | None = None, timeout: float | None = None) -> None:
        """Wait until ``count`` nodes (default all) have a stream up.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        needed = len(self._nodes) if count is None else count
        async with asyncio.timeout(timeout):
            while sum(node.connected for node in self._config) < needed:
                if self._changed is None:
                    raise RuntimeError("OutboundManager is not started")
                self._changed.clear()
                await self._changed.wait()

    def _channel(self, node: Node) -> aio.Channel:
        options = [*self._keepalive.channel_options(), *self._backoff.channel_options()]
        if self._credentials is not None:
            channel = aio.secure_channel(node.address, self._credentials, options=options)
        else:
            channel = aio.insecure_channel(node.address, options=options)
        self._channels.append(channel)
        return channel

    async def _keep_connected(self, node: Node) -> None:
        channel = self._channel(node)
        open_stream = channel.stream_stream(
            NODE_STREAM_PATH,
            request_serializer=Message.SerializeToString,
            response_deserializer=Message.FromString,
        )
        attempt = 0
        while True:
            if self._gate is not None:
                await self._gate(node.id)
            started = time.monotonic()
            await self._run_stream(
                node, open_stream(None, metadata=self._metadata, wait_for_ready=True)
            )
            attempt = 0 if time.monotonic() - started > _STABLE_SECONDS else attempt + 1
            await asyncio.sleep(self._backoff.delay(attempt))

    async def _run_stream(self, node: Node, call: aio.StreamStreamCall[Message, Message]) -> None:
        try:
            await call.initial_metadata()
            if call.done():
                return
            peer = Peer(node.id, node.address, node.address)
            endpoint = StreamEndpoint(
                peer, self._handlers, accepted=False, send_buffer=self._send_buffer
            )
            detach = self._attach(node, endpoint)
            self._notify()
            try:
                await endpoint.run(call.read, call.write)
            finally:
                detach()
                self._notify()
        except aio.AioRpcError as exc:
            _log.debug("stream to node %d failed: %s", node.id, exc.code())
        finally:
            call.cancel()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()


def _attach_to_node(node: Node, endpoint: StreamEndpoint) -> Cleanup:
    node.attach(endpoint)

    def detach() -> None:
        if node.channel is endpoint:
            node.attach(None)

    return detach
