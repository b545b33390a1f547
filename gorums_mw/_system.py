"""System: one symmetric replica — server, NodeStream, InboundManager, dialer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any

import grpc
from grpc import aio
from opentelemetry import metrics, trace

from gorums_mw._calls.configuration import Configuration, ordered_configuration
from gorums_mw._calls.node import Node
from gorums_mw._calls.origin import Origin
from gorums_mw._errors import ConfigurationError
from gorums_mw._identity.address import parse_node_address
from gorums_mw._identity.peer import Peer, check_node_id
from gorums_mw._inbound.manager import ConfigCallback, InboundManager, wiring_of
from gorums_mw._inbound.service import add_node_stream_service
from gorums_mw._inbound.waits import describe_condition
from gorums_mw._lifecycle import Lifecycle
from gorums_mw._limits import Limits
from gorums_mw._options import InboundNodeOption, with_nodes
from gorums_mw._outbound import OutboundManager
from gorums_mw._settings import Backoff, Keepalive, NameResolution, setting
from gorums_mw._stream.budget import ByteBudget
from gorums_mw._stream.local import LocalChannel
from gorums_mw._stream.registry import HandlerRegistry
from gorums_mw.interceptors._server import PeerIdentityInterceptor

AddServicer = Callable[[Any, Any], None]

STOP_GRACE = 0.1
"""Seconds ``stop()`` gives calls in flight by default."""

_FIRST_RESOLUTION = 2.0
"""Seconds ``start()`` waits for the replicas' names to resolve, at most."""


def _listen_address(address: str) -> str:
    """Where a replica at ``address`` listens: there, or on every interface if it is a name."""
    parsed = parse_node_address(address)
    return f"[::]:{parsed.port}" if parsed.is_name else address


class System:
    """Runs one replica of a symmetric set.

    A grpc.aio server with ``PeerIdentityInterceptor``, the NodeStream
    service and an ``InboundManager``, plus an outbound stream to every other
    replica. Of each pair's two streams both replicas use the one dialed by
    the lower ID, so ``config()`` — every connected replica plus this one —
    is the same kind of configuration on every replica, whoever dialed whom.
    A Go Gorums replica keeps both streams of a pair; this one then keeps
    dialing it and calls it over its own stream.

    Example::

        nodes = with_nodes({1: "127.0.0.1:9001", 2: "127.0.0.1:9002", 3: "127.0.0.1:9003"})
        system = System(1, nodes)
        system.add_servicer(add_StoreServicer_to_server, Store())
        async with system:
            config = await system.wait_for_config(lambda c: len(c) == 3, timeout=10)
            await config.quorum_call("store.Store.Write", request, WriteReply)
    """

    def __init__(
        self,
        my_id: int,
        nodes: InboundNodeOption,
        *,
        listen: str | None = None,
        limits: Limits | None = None,
        keepalive: Keepalive | None = None,
        backoff: Backoff | None = None,
        on_config_change: ConfigCallback | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        server_credentials: grpc.ServerCredentials | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        require_certificate: bool = False,
        name_resolution: NameResolution | None = None,
        batching: bool = True,
    ) -> None:
        """Prepare replica ``my_id`` of ``nodes``.

        Args:
            my_id: this replica's ID; must be one of ``nodes``.
            nodes: every replica, from ``with_nodes``.
            listen: the address to bind; default this replica's address in
                ``nodes``, or, when that is a DNS name, every interface on its
                port (``[::]:port``: a name need not resolve to start).
            limits: message size and buffer bounds of every stream; the
                server and the dialer share one ``total_buffer``.
            keepalive: bounds how fast a vanished replica is noticed.
            backoff: reconnect delays of outbound streams.
            on_config_change: called with ``config()`` whenever it changes.
            tracer_provider: where spans go; default the global provider.
            meter_provider: where metrics go; default the global provider.
            server_credentials: serve over TLS with these credentials
                (``grpc.ssl_server_credentials``); default insecure.
            channel_credentials: dial the other replicas over TLS with these
                (``grpc.ssl_channel_credentials`` with this replica's
                certificate); default insecure.
            require_certificate: refuse peers whose TLS client certificate
                does not name their claimed IP (see ``InboundManager``).
            name_resolution: how replicas addressed by DNS name are kept
                current; default ``NameResolution()``.
            batching: speak BatchedNodeStream with gorums-mw peers (several
                messages per gRPC message, no added delay), serving and
                dialing it; False keeps the plain NodeStream wire only.

        Raises:
            TypeError: ``nodes`` is not from ``with_nodes``, or a setting has
                the wrong type.
            ConfigurationError: ``my_id`` is not a valid ID or not one of ``nodes``.
        """
        if not isinstance(nodes, InboundNodeOption):
            raise TypeError("System needs with_nodes({id: addr, ...})")
        if check_node_id(my_id) not in nodes.nodes:
            raise ConfigurationError(f"my_id {my_id} is not one of the nodes {sorted(nodes.nodes)}")
        self._keepalive = setting(keepalive, Keepalive, "keepalive")
        self._limits = setting(limits, Limits, "limits")
        budget = ByteBudget(self._limits.total_buffer)
        self._lifecycle = Lifecycle(f"System {my_id}")
        self._names = setting(name_resolution, NameResolution, "name_resolution")
        self._address = nodes.nodes[my_id]
        self._listen = listen or _listen_address(self._address)
        self.handlers = HandlerRegistry()
        """Where servicers are registered to answer calls over NodeStream."""
        self._user_callback = on_config_change
        self.manager = InboundManager(
            my_id,
            nodes,
            limits=self._limits,
            budget=budget,
            handlers=self.handlers,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            on_config_change=self._on_change if on_config_change is not None else None,
            require_certificate=require_certificate,
            name_resolution=self._names,
        )
        """The InboundManager of this replica."""
        self._wiring = wiring_of(self.manager)
        telemetry = self._wiring.telemetry
        self._self_node = Node(my_id, self._address, telemetry, self._lifecycle)
        self._origin = Origin(frozenset(nodes.nodes), (self._lifecycle,))
        self._local = LocalChannel(Peer(my_id, self._address, "local"), self.handlers, telemetry)
        self._self_node.attach(self._local)
        peers = {nid: addr for nid, addr in nodes.nodes.items() if nid != my_id}
        self._dialer = (
            OutboundManager(
                with_nodes(peers),
                my_addr=self._address,
                my_id=my_id,
                handlers=self.handlers,
                limits=self._limits,
                budget=budget,
                keepalive=self._keepalive,
                backoff=backoff,
                credentials=channel_credentials,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                linker=self._wiring,
                name_resolution=self._names,
                batching=batching,
            )
            if peers
            else None
        )
        self.server = aio.server(
            interceptors=[PeerIdentityInterceptor(self.manager)],
            options=[
                *self._keepalive.server_options(),
                *self._limits.grpc_options(),
                # grpc sets SO_REUSEPORT by default, so two replicas could share a port.
                ("grpc.so_reuseport", 0),
            ],
        )
        """The grpc.aio server; add ordinary services to it before ``start()``."""
        add_node_stream_service(self.manager, self.server, batching=batching)
        self._server_credentials = server_credentials
        self._port: int | None = None
        self._cached: tuple[Configuration, Configuration] | None = None

    def __repr__(self) -> str:
        ids = list(self.config().ids)
        return f"<System id={self.id} address={self._address!r} config={ids}>"

    @property
    def id(self) -> int:
        """This replica's ID."""
        return self.manager.my_id

    @property
    def address(self) -> str:
        """This replica's normalized address."""
        return self._address

    def add_servicer(self, add_to_server: AddServicer, servicer: object) -> None:
        """Serve ``servicer`` over NodeStream and as an ordinary grpc service.

        Args:
            add_to_server: the generated ``add_XServicer_to_server`` function.
            servicer: the servicer instance.
        """
        add_to_server(servicer, self.handlers)
        add_to_server(servicer, self.server)

    async def start(self) -> None:
        """Bind the server and start dialing the other replicas.

        Raises:
            RuntimeError: the listen address could not be bound (for example,
                another process listens there), or it was started before.
        """
        self._lifecycle.start()
        self._local.bind_loop()
        try:
            if self._server_credentials is not None:
                self._port = self.server.add_secure_port(self._listen, self._server_credentials)
            else:
                self._port = self.server.add_insecure_port(self._listen)
        except RuntimeError as exc:
            self._lifecycle.stop()
            raise RuntimeError(
                f"replica {self.id} could not listen on {self._listen}"
                " (is another process listening there?)"
            ) from exc
        if not self._port:
            self._lifecycle.stop()
            raise RuntimeError(f"replica {self.id} could not listen on {self._listen}")
        await self.server.start()
        await self._resolve_names()
        if self._dialer is not None:
            await self._dialer.start()

    async def _resolve_names(self) -> None:
        """Resolve the replicas' names once before dialing, so the first claims pass.

        Bounded: names that do not resolve yet are resolved later, when their
        replicas' claims arrive.
        """
        book = self._wiring.address_book
        if book.has_names:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FIRST_RESOLUTION):
                    await book.resolve_all()

    async def stop(self, grace: float | None = STOP_GRACE) -> None:
        """Close outbound streams, stop the server (``grace`` seconds for calls in
        flight), then close the manager.

        The default grace also lets the peers' streams end cleanly: a server
        stopped without one (``grace=None``) cancels them, and grpc logs a
        "Got goaway" line in every peer.

        Safe to call more than once, and before ``start()``.
        """
        if self._lifecycle.stop():
            if self._dialer is not None:
                await self._dialer.stop()
            await self.server.stop(grace)
        self.manager.close()

    async def __aenter__(self) -> System:
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
        """This replica and every connected replica, ID-sorted."""
        peers = self.manager.inbound_config()
        cached = self._cached
        if cached is not None and cached[0] is peers:
            return cached[1]
        config = ordered_configuration(
            tuple(sorted((*peers, self._self_node), key=lambda node: node.id)),
            self._wiring.telemetry,
            self._node,
            self._origin,
        )
        self._cached = (peers, config)
        return config

    async def wait_for_config(
        self, cond: Callable[[Configuration], bool], timeout: float | None = None
    ) -> Configuration:
        """Wait until ``cond(config())`` holds; return that configuration.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; it names ``cond``
                and the configuration.
            RuntimeError: the replica is not started.
        """
        self._lifecycle.require_started()
        try:
            await self.manager.wait_for_config(lambda _: cond(self.config()), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"replica {self.id} waited {timeout} s for {describe_condition(cond)};"
                f" its configuration was {self.config()!r}"
            ) from None
        return self.config()

    def _node(self, node_id: int) -> Node | None:
        """The handle of replica ``node_id``, this one included."""
        if node_id == self.id:
            return self._self_node
        return self._wiring.node(node_id)

    def _on_change(self, _: Configuration) -> None:
        if self._user_callback is not None:
            self._user_callback(self.config())
