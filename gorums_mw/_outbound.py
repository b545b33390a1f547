"""OutboundManager: dial nodes, keep one NodeStream to each, reconnect."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Protocol

import grpc
from grpc import aio
from opentelemetry import metrics, trace

from gorums_mw._calls.configuration import Configuration, ordered_configuration
from gorums_mw._calls.node import Node
from gorums_mw._calls.origin import Origin
from gorums_mw._identity.claims import GORUMS_MW_KEY, dialer_metadata
from gorums_mw._identity.peer import Peer
from gorums_mw._identity.registrar import Cleanup
from gorums_mw._lifecycle import Lifecycle
from gorums_mw._limits import Limits
from gorums_mw._options import NodeListOption
from gorums_mw._proto.batch_pb2 import Batch
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._settings import Backoff, Keepalive, NameResolution, setting
from gorums_mw._stream.budget import ByteBudget
from gorums_mw._stream.endpoint import StreamEndpoint
from gorums_mw._stream.framing import BatchFraming, Framing, PlainFraming
from gorums_mw._stream.registry import HandlerRegistry
from gorums_mw._telemetry import Telemetry, peer_attributes
from gorums_mw._wire import BATCHED_NODE_STREAM_PATH, NODE_STREAM_PATH

_log = logging.getLogger("gorums_mw")

Form = Literal["plain", "batched"]
"""How a stream frames its messages: NodeStream, or BatchedNodeStream."""

_STABLE_SECONDS = 1.0
"""A stream that lived this long resets the reconnect backoff."""


class StreamLinker(Protocol):
    """How an outbound stream joins a larger membership; by default each stream
    simply connects its node. A ``System`` passes its ``InboundManager``'s
    wiring, which consults the pair rule (of a pair's two streams, both
    replicas use the one dialed by the lower ID)."""

    def attach(self, node: Node, endpoint: StreamEndpoint) -> Cleanup:
        """Offer ``endpoint`` to carry calls to ``node``; return what undoes it
        (a stream the membership does not use is retired)."""
        ...

    async def wait_to_dial(self, node_id: int) -> None:
        """Return when node ``node_id`` should be dialed (again)."""
        ...


class _DirectLinker:
    """Each outbound stream connects its node; dial at once."""

    def attach(self, node: Node, endpoint: StreamEndpoint) -> Cleanup:
        node.attach(endpoint)

        def detach() -> None:
            if node.channel is endpoint:
                node.attach(None)

        return detach

    async def wait_to_dial(self, node_id: int) -> None:
        return


class OutboundManager:
    """Dials nodes and keeps one NodeStream open to each, reconnecting with backoff.

    A stream counts as up once it is open on a connected channel: the
    other end's response headers are never waited for (Go Gorums sends
    them only with its first message). Calls the other end makes back over
    a stream are served by ``handlers``. Use as an async context manager, or
    ``await start()`` and ``await stop()``. Calls must be made on the event
    loop that started it.

    Example::

        nodes = with_nodes({1: "127.0.0.1:9001", 2: "127.0.0.1:9002"})
        async with OutboundManager(nodes) as dialer:
            await dialer.wait_connected(timeout=5)
            replies = await dialer.config().quorum_call("echo.Echo.Say", req, EchoReply)
    """

    def __init__(
        self,
        nodes: NodeListOption,
        *,
        my_addr: str | None = None,
        my_id: int | None = None,
        client_peer: bool = False,
        handlers: HandlerRegistry | None = None,
        limits: Limits | None = None,
        keepalive: Keepalive | None = None,
        backoff: Backoff | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        linker: StreamLinker | None = None,
        budget: ByteBudget | None = None,
        name_resolution: NameResolution | None = None,
        batching: bool = True,
    ) -> None:
        """Prepare to dial ``nodes``.

        Args:
            nodes: the nodes to dial, from ``with_nodes`` or ``with_node_list``.
            my_addr: the address this process listens on, as the servers
                have it configured (an IP literal or a DNS name, not
                resolved here), sent as ``gorums-addr`` so servers know
                which replica is calling; None to dial as an external client.
            my_id: this replica's node ID, sent as ``gorums-node-id`` (Go
                Gorums' form of the claim); servers check it like
                ``gorums-addr``. Give it with ``my_addr``.
            client_peer: announce this process as a client peer (no listening
                address) that servers may call back: sends ``gorums-client``
                and ``gorums-node-id: 0``.
            handlers: serve the calls servers make back over the streams.
            limits: message size and buffer bounds; default ``Limits()``.
            keepalive: keepalive settings; default ``Keepalive()``.
            backoff: reconnect delays; default ``Backoff()``.
            credentials: TLS channel credentials; default insecure.
            tracer_provider: where spans go; default the global provider.
            meter_provider: where metrics go; default the global provider.
            linker: how streams join a membership; default each connects its node.
            budget: the byte budget to share with other streams (a ``System``
                shares one with its server); default one of ``limits.total_buffer``.
            name_resolution: for nodes addressed by DNS name: grpc resolves the
                name again at most once per ``min_interval`` when a connection
                fails (grpc's default is 30 s), so a replica that moved is
                dialed at its new IP soon; default ``NameResolution()``.
            batching: dial ``BatchedNodeStream`` first (several messages per
                gRPC message between gorums-mw peers), falling back to
                NodeStream when a server does not serve it (Go Gorums); the
                answer is remembered per address. False: NodeStream only.

        Raises:
            TypeError: ``nodes`` is not a node option, or a setting has the wrong type.
            ConfigurationError: ``my_addr`` or ``my_id`` is malformed, ``my_id``
                comes without ``my_addr``, or either comes with ``client_peer``.
        """
        if not isinstance(nodes, NodeListOption):
            raise TypeError(f"nodes must come from with_nodes or with_node_list, got {nodes!r}")
        self._metadata = dialer_metadata(my_addr, my_id, client_peer)
        self._handlers = handlers
        self._limits = setting(limits, Limits, "limits")
        self._budget = budget if budget is not None else ByteBudget(self._limits.total_buffer)
        self._keepalive = setting(keepalive, Keepalive, "keepalive")
        self._backoff = setting(backoff, Backoff, "backoff")
        self._names = setting(name_resolution, NameResolution, "name_resolution")
        self._batching = batching
        self._forms: dict[str, Form] = {}
        self._credentials = credentials
        self._telemetry = Telemetry(tracer_provider, meter_provider, my_id)
        self._linker: StreamLinker = linker if linker is not None else _DirectLinker()
        self._lifecycle = Lifecycle("OutboundManager")
        self._nodes = {
            nid: Node(nid, addr, self._telemetry, self._lifecycle)
            for nid, addr in nodes.nodes.items()
        }
        self._config = ordered_configuration(
            tuple(self._nodes.values()),
            self._telemetry,
            self._nodes.get,
            Origin(frozenset(self._nodes), (self._lifecycle,)),
        )
        self._channels: list[aio.Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        connected = [node.id for node in self._config if node.connected]
        return (
            f"<OutboundManager {self._lifecycle.state} nodes={list(self._nodes)}"
            f" connected={connected}>"
        )

    async def __aenter__(self) -> OutboundManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def config(self) -> Configuration:
        """The configuration of all dialed nodes (connected or not)."""
        return self._config

    async def start(self) -> None:
        """Start dialing every node.

        Raises:
            RuntimeError: it was started before.
        """
        self._lifecycle.start()
        for node in self._nodes.values():
            self._tasks.append(asyncio.create_task(self._keep_connected(node)))

    async def stop(self) -> None:
        """Close every stream and channel; calls in flight fail with ``UNAVAILABLE``.

        Safe to call more than once, and before ``start()``.
        """
        if not self._lifecycle.stop():
            return
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        channels, self._channels = self._channels, []
        await asyncio.gather(*(channel.close(None) for channel in channels))

    async def wait_connected(self, count: int | None = None, timeout: float | None = None) -> None:
        """Wait until ``count`` nodes (default all) have a stream up.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; it names the
                nodes still disconnected.
            RuntimeError: the manager is not started.
        """
        self._lifecycle.require_started()
        needed = len(self._nodes) if count is None else count
        try:
            async with asyncio.timeout(timeout):
                while sum(node.connected for node in self._config) < needed:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            missing = [node.id for node in self._config if not node.connected]
            raise TimeoutError(
                f"{needed} of {len(self._nodes)} nodes not connected within {timeout} s"
                f" (disconnected: {missing})"
            ) from None

    def _channel(self, node: Node) -> aio.Channel:
        options = [
            *self._keepalive.channel_options(),
            *self._backoff.channel_options(),
            *self._limits.grpc_options(),
            ("grpc.dns_min_time_between_resolutions_ms", int(self._names.min_interval * 1000)),
            ("grpc.enable_retries", 0),  # a stream refused at a GOAWAY fails; we redial
        ]
        if self._credentials is not None:
            channel = aio.secure_channel(node.address, self._credentials, options=options)
        else:
            channel = aio.insecure_channel(node.address, options=options)
        self._channels.append(channel)
        return channel

    async def _keep_connected(self, node: Node) -> None:
        channel = self._channel(node)
        dial: dict[Form, Callable[[], aio.StreamStreamCall[Any, Any]]] = {
            "plain": functools.partial(self._open, channel, NODE_STREAM_PATH, Message),
            "batched": functools.partial(self._open, channel, BATCHED_NODE_STREAM_PATH, Batch),
        }
        attempt = 0
        first = True
        while True:
            await self._linker.wait_to_dial(node.id)
            if not first:
                self._telemetry.reconnects.add(1, peer_attributes(node.id))
            first = False
            known = self._forms.get(node.address) if self._batching else "plain"
            form: Form = known or "batched"
            started = time.monotonic()
            code = await self._run_stream(node, dial[form](), form, probe=known is None)
            if form == "batched" and code is grpc.StatusCode.UNIMPLEMENTED:
                self._forms[node.address] = "plain"  # not a gorums-mw peer: NodeStream it is
                continue
            attempt = 0 if time.monotonic() - started > _STABLE_SECONDS else attempt + 1
            await asyncio.sleep(self._backoff.delay(attempt))

    def _open(
        self, channel: aio.Channel, path: str, reply: type[Message] | type[Batch]
    ) -> aio.StreamStreamCall[Any, Any]:
        """Open one stream (it connects once the channel is ready)."""
        open_stream = channel.stream_stream(
            path, request_serializer=reply.SerializeToString, response_deserializer=reply.FromString
        )
        return open_stream(None, metadata=self._metadata, wait_for_ready=True)

    async def _run_stream(
        self, node: Node, call: aio.StreamStreamCall[Any, Any], form: Form, *, probe: bool
    ) -> grpc.StatusCode | None:
        """Carry one stream to ``node`` until it ends; return how it ended, if it did.

        A stream counts as up once it is open; only the first batched stream
        to an address waits for the server's answer (its headers, marked
        ``gorums-mw``, or ``UNIMPLEMENTED`` from a server without the
        batched form).
        """
        try:
            await call.wait_for_connection()
            if probe:
                # A gorums-mw server marks its headers; a server without the
                # path answers trailers-only (UNIMPLEMENTED), whose status may
                # land a moment after its empty headers.
                if GORUMS_MW_KEY not in await call.initial_metadata():
                    return await call.code()
                self._forms[node.address] = form
            peer = Peer(node.id, node.address, node.address)
            endpoint = StreamEndpoint(
                peer,
                self._handlers,
                accepted=False,
                limits=self._limits,
                budget=self._budget,
                telemetry=self._telemetry,
            )
            framing: Framing = (
                BatchFraming(call.read, call.write)
                if form == "batched"
                else PlainFraming(call.read, call.write)
            )
            detach = self._linker.attach(node, endpoint)
            self._changed.set()
            try:
                await endpoint.run(framing)
            finally:
                detach()
                self._changed.set()
        except aio.AioRpcError as exc:
            _log.debug("stream to node %d failed: %s", node.id, exc.code())
            return exc.code()
        finally:
            call.cancel()
        return await call.code() if call.done() else None
