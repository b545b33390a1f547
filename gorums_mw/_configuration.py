"""A configuration: an immutable, ID-sorted sequence of nodes to call."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar, overload

from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls import (
    NodeReply,
    QuorumFunction,
    R,
    as_call_error,
    call_entries,
    checked_method,
    deadline_of,
    decode_reply,
    timed_out,
)
from gorums_mw._errors import CallError, QuorumCallError
from gorums_mw._node import STREAM_REPLY_LIMIT, Node
from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._stream._replies import Replies
from gorums_mw._tracing import (
    ATTR_CONFIG_SIZE,
    ATTR_METHOD,
    ATTR_QUORUM,
    ATTR_REPLIES,
    SPAN_MULTICAST,
    SPAN_QUORUM_CALL,
    Tracer,
)

T = TypeVar("T")


class Configuration(Sequence[Node]):
    """An immutable, ID-sorted set of nodes on which calls are made.

    Holding an old configuration is safe: its membership never changes, and
    each of its nodes fails fast while disconnected. Calls must be made on
    the event loop that runs the nodes' streams (``RuntimeError`` otherwise).
    """

    __slots__ = ("__weakref__", "_nodes", "_tracer")

    def __init__(self, nodes: Iterable[Node] = (), *, tracer: Tracer | None = None) -> None:
        """Build a configuration of ``nodes``.

        Raises:
            ValueError: two nodes share an ID.
        """
        ordered = tuple(sorted(nodes, key=lambda node: node.id))
        for before, after in itertools.pairwise(ordered):
            if before.id == after.id:
                raise ValueError(f"node ID {after.id} appears twice in a configuration")
        self._nodes: Sequence[Node] = ordered
        self._tracer = tracer if tracer is not None else Tracer()

    @classmethod
    def _sorted(cls, nodes: Sequence[Node], tracer: Tracer) -> Configuration:
        """Wrap already-sorted ``nodes``; the caller never changes them afterwards."""
        config = cls.__new__(cls)
        config._nodes = nodes
        config._tracer = tracer
        return config

    def __repr__(self) -> str:
        return f"<Configuration ids={list(self.ids)}>"

    def __len__(self) -> int:
        return len(self._nodes)

    @overload
    def __getitem__(self, index: int) -> Node: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Node]: ...
    def __getitem__(self, index: int | slice) -> Node | Sequence[Node]:
        return self._nodes[index]

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Configuration):
            return NotImplemented
        return len(self._nodes) == len(other._nodes) and all(
            mine is theirs for mine, theirs in zip(self._nodes, other._nodes, strict=True)
        )

    def __hash__(self) -> int:
        return hash(self.ids)

    @property
    def ids(self) -> tuple[int, ...]:
        """The node IDs, ascending."""
        return tuple(node.id for node in self._nodes)

    def node(self, node_id: int) -> Node:
        """The node with ID ``node_id``.

        Raises:
            KeyError: no such node in this configuration (the message lists its IDs).
        """
        for node in self._nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"node {node_id!r} is not in this configuration (IDs {list(self.ids)})")

    def majority(self) -> int:
        """The default quorum size: more than half of the nodes."""
        return len(self._nodes) // 2 + 1

    @overload
    async def quorum_call(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        quorum: int | None = None,
        timeout: float | None = None,
        quorum_function: None = None,
    ) -> dict[int, R]: ...
    @overload
    async def quorum_call(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        quorum: None = None,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T],
    ) -> T: ...
    async def quorum_call(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        quorum: int | None = None,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T] | None = None,
    ) -> dict[int, R] | T:
        """Call ``method`` on every node; return once a quorum is reached.

        The request goes to every node at once. Without ``quorum_function``
        the call returns the replies as soon as ``quorum`` of them are in
        (Go Gorums' ``Majority()``, ``Threshold(n)``, ``First()``, ``All()``
        are ``quorum=None``, ``n``, ``1``, ``len(config)``). With it, the
        function is called with the replies received so far after each
        reply, and the first value it returns that is not None is the
        call's result (Go's quorum functions).

        Args:
            method: the protobuf full method name, ``pkg.Service.Method``
                (or grpc's ``/pkg.Service/Method``).
            request: the request message, sent to every node.
            reply_type: the generated class of the reply.
            quorum: replies needed, at least 1; default a majority.
            timeout: seconds for the whole call, including any wait for room
                in a node's send buffer; None waits until every node has
                replied or failed.
            quorum_function: decides when the call is done and what it
                returns; replaces ``quorum``.

        Returns:
            The replies received, by node ID (at least ``quorum`` of them), or
            the quorum function's result.

        Raises:
            ValueError: ``quorum`` is below 1, or ``method`` is malformed.
            TypeError: the request or reply type is not the method's (when
                its service is known locally).
            QuorumCallError: the quorum cannot be reached: the configuration
                is too small, or too many nodes failed or timed out; it lists
                each node's failure.
            RuntimeError: called outside the event loop of the streams.
        """
        name = checked_method(method, request, reply_type)
        deadline = deadline_of(timeout)
        if quorum_function is None:
            needed = self._needed(name, quorum)
            decide: QuorumFunction[R, object] = functools.partial(_threshold, needed)
        else:
            if quorum is not None:
                raise ValueError("give quorum or quorum_function, not both")
            needed, decide = 0, quorum_function
        with self._tracer.tracer.start_as_current_span(SPAN_QUORUM_CALL) as span:
            recording = span.is_recording()
            if recording:
                span.set_attributes(
                    {ATTR_METHOD: name, ATTR_CONFIG_SIZE: len(self._nodes), ATTR_QUORUM: needed}
                )
            collector: _Quorum[R] = _Quorum(len(self._nodes), needed, reply_type, decide)
            futures = self._start_all(name, request.SerializeToString(), recording, collector)
            try:
                async with asyncio.timeout_at(deadline):
                    await collector.done
            except TimeoutError:
                collector.time_out(futures, timeout)
            finally:
                for future in futures.values():
                    future.cancel()
            if recording:
                span.set_attribute(ATTR_REPLIES, len(collector.replies))
            if collector.result is _UNDECIDED:
                raise QuorumCallError(name, needed, collector.replies, collector.errors)
            return collector.result  # type: ignore[return-value]

    async def replies(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        ignore_errors: bool = False,
    ) -> AsyncIterator[NodeReply[R]]:
        """Call ``method`` on every node and yield each answer as it arrives.

        For custom aggregation (Go Gorums' ``Results()``): stop iterating as
        soon as you have what you need; the calls still outstanding are then
        abandoned. Yields one ``NodeReply`` per node, holding the reply or
        the node's error (a node still silent when ``timeout`` passes gets
        ``DEADLINE_EXCEEDED``).

        Args:
            method: as ``quorum_call``.
            request: the request message, sent to every node.
            reply_type: the generated class of the reply.
            timeout: seconds for the whole call.
            ignore_errors: yield only replies, never errors.
        """
        name = checked_method(method, request, reply_type)
        deadline = deadline_of(timeout)
        arrivals: asyncio.Queue[NodeReply[R]] = asyncio.Queue()
        payload = request.SerializeToString()
        futures: dict[int, asyncio.Future[Message]] = {}
        for node in self._nodes:
            try:
                future = node.send_request(name, payload)
            except CallError as error:
                arrivals.put_nowait(NodeReply(node.id, None, error))
                continue
            futures[node.id] = future
            future.add_done_callback(functools.partial(_queue_reply, arrivals, node.id, reply_type))
        try:
            for _ in self._nodes:
                try:
                    async with asyncio.timeout_at(deadline):
                        answer = await arrivals.get()
                except TimeoutError:
                    break
                if answer.error is None or not ignore_errors:
                    yield answer
            else:
                return
            if not ignore_errors:
                for node_id, future in futures.items():
                    if not future.done():
                        yield NodeReply(node_id, None, timed_out(node_id, timeout))
        finally:
            for future in futures.values():
                future.cancel()

    @overload
    def correctable(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: None = None,
    ) -> AsyncIterator[NodeReply[R]]: ...
    @overload
    def correctable(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T],
    ) -> AsyncIterator[T]: ...
    def correctable(
        self,
        method: str,
        request: ProtoMessage,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T] | None = None,
    ) -> AsyncIterator[NodeReply[R]] | AsyncIterator[T]:
        """Call a server-streaming method on every node; yield replies or improving results.

        Go Gorums' correctable calls: each node may send several replies.
        Without ``quorum_function`` every reply of every node is yielded as
        it arrives (a node's error ends that node's replies). With it, the
        function is called with the latest reply of each node after every
        reply, and each result that is not None is yielded: results that
        improve as replies come in. Nothing on the wire marks a node's last
        reply (as upstream), so the iteration ends when ``timeout`` passes,
        when every node has failed, or when you stop iterating.

        Raises:
            ValueError, TypeError: as ``quorum_call`` (at once).
            RuntimeError: called outside the event loop of the streams.
        """
        name = checked_method(method, request, reply_type, "server_streaming")
        deadline = deadline_of(timeout)
        arrivals = self._correctable(name, request.SerializeToString(), reply_type, deadline)
        if quorum_function is None:
            return arrivals
        return _improving(arrivals, quorum_function)

    async def _correctable(
        self, method: str, payload: bytes, reply_type: type[R], deadline: float | None
    ) -> AsyncGenerator[NodeReply[R], None]:
        replies = Replies(STREAM_REPLY_LIMIT * max(1, len(self._nodes)))
        failed: list[NodeReply[R]] = []
        for node in self._nodes:
            try:
                node.send_stream(method, payload, (), replies, node.id)
            except CallError as error:
                failed.append(NodeReply(node.id, None, error))
        try:
            for answer in failed:
                yield answer
            while replies.open_calls:
                try:
                    node_id, item = await replies.get(deadline)
                except TimeoutError:
                    return
                if isinstance(item, CallError):
                    yield NodeReply(node_id, None, item)
                    continue
                try:
                    yield NodeReply(node_id, decode_reply(item, reply_type, node_id), None)
                except CallError as error:
                    yield NodeReply(node_id, None, error)
        finally:
            replies.close()

    async def multicast(self, method: str, request: ProtoMessage) -> tuple[int, ...]:
        """Send ``method`` one-way to every connected node; never waits.

        A node that is disconnected, or whose send buffer is full (a peer
        that stopped reading), does not get its copy: it is dropped, not
        queued, so one stuck peer never blocks the others.

        Returns:
            The IDs of the nodes it was sent to.

        Raises:
            ValueError, TypeError: as ``quorum_call``.
            RuntimeError: called outside the event loop of the streams.
        """
        name = checked_method(method, request, None)
        with self._tracer.tracer.start_as_current_span(SPAN_MULTICAST) as span:
            recording = span.is_recording()
            if recording:
                span.set_attributes({ATTR_METHOD: name, ATTR_CONFIG_SIZE: len(self._nodes)})
            entries = call_entries(recording)
            payload = request.SerializeToString()
            return tuple([node.id for node in self._nodes if node.cast(name, payload, entries)])

    def _needed(self, method: str, quorum: int | None) -> int:
        if quorum is None:
            quorum = self.majority()
        if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
            raise ValueError(f"quorum must be a positive int, got {quorum!r}")
        if quorum > len(self._nodes):
            raise QuorumCallError(
                method,
                quorum,
                {},
                {},
                reason=f"a quorum of {quorum} is impossible in {self!r}",
            )
        return quorum

    def _start_all(
        self, method: str, payload: bytes, recording: bool, collector: _Quorum[R]
    ) -> dict[int, asyncio.Future[Message]]:
        """Send the request to every node at once (none waits on another)."""
        entries = call_entries(recording)
        futures: dict[int, asyncio.Future[Message]] = {}
        for node in self._nodes:
            try:
                futures[node.id] = node.send_request(method, payload, entries)
            except CallError as error:
                collector.fail(node.id, error)
        for node_id, future in futures.items():
            future.add_done_callback(functools.partial(collector.on_reply, node_id))
        return futures


_UNDECIDED = object()


def _threshold(needed: int, replies: Mapping[int, R]) -> dict[int, R] | None:
    """The built-in quorum function: all replies, once there are ``needed``."""
    return dict(replies) if len(replies) >= needed else None


class _Quorum(Generic[R]):
    """Collects the replies of a quorum call; ``done`` resolves when it is decided.

    It is decided when ``decide`` returns a result, when every node has
    answered, or as soon as more nodes failed than a quorum of ``needed``
    can spare (0: only a quorum function knows, so wait for every node).
    """

    __slots__ = ("decide", "done", "errors", "needed", "replies", "reply_type", "result", "size")

    def __init__(
        self, size: int, needed: int, reply_type: type[R], decide: QuorumFunction[R, object]
    ) -> None:
        self.size = size
        self.needed = needed
        self.reply_type = reply_type
        self.decide = decide
        self.replies: dict[int, R] = {}
        self.errors: dict[int, CallError] = {}
        self.result: object = _UNDECIDED
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_reply(self, node_id: int, future: asyncio.Future[Message]) -> None:
        if self.done.done() or future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.fail(node_id, as_call_error(error, node_id))
            return
        try:
            self.replies[node_id] = decode_reply(future.result(), self.reply_type, node_id)
        except CallError as call_error:
            self.fail(node_id, call_error)
            return
        result = self.decide(self.replies)
        if result is not None:
            self.result = result
            self.done.set_result(None)
        elif len(self.replies) + len(self.errors) == self.size:
            self.done.set_result(None)

    def fail(self, node_id: int, error: CallError) -> None:
        self.errors[node_id] = error
        if self.done.done():
            return
        hopeless = self.needed and len(self.errors) > self.size - self.needed
        if hopeless or len(self.replies) + len(self.errors) == self.size:
            self.done.set_result(None)

    def time_out(
        self, futures: Mapping[int, asyncio.Future[Message]], timeout: float | None
    ) -> None:
        for node_id in futures:
            if node_id not in self.replies and node_id not in self.errors:
                self.errors[node_id] = timed_out(node_id, timeout)


async def _improving(
    arrivals: AsyncGenerator[NodeReply[R], None], quorum_function: QuorumFunction[R, T]
) -> AsyncIterator[T]:
    """The quorum function's results over the latest reply of each node."""
    latest: dict[int, R] = {}
    try:
        async for answer in arrivals:
            if answer.value is None:
                continue
            latest[answer.node_id] = answer.value
            result = quorum_function(latest)
            if result is not None:
                yield result
    finally:
        await arrivals.aclose()


def _queue_reply(
    arrivals: asyncio.Queue[NodeReply[R]],
    node_id: int,
    reply_type: type[R],
    future: asyncio.Future[Message],
) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        arrivals.put_nowait(NodeReply(node_id, None, as_call_error(error, node_id)))
        return
    try:
        arrivals.put_nowait(
            NodeReply(node_id, decode_reply(future.result(), reply_type, node_id), None)
        )
    except CallError as call_error:
        arrivals.put_nowait(NodeReply(node_id, None, call_error))
