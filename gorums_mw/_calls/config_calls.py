"""The calls a configuration offers: quorum calls, reply iterators, correctable calls,
multicasts. Each runs through one ``Fanout`` (the engine) with a consumer on top."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls.answers import NodeReply, QuorumFunction, R
from gorums_mw._calls.fanout import Fanout
from gorums_mw._calls.interception import CallInfo, QuorumInterceptor, intercept
from gorums_mw._calls.iteration import answers_of, close, improving, without_errors
from gorums_mw._calls.node import Node
from gorums_mw._calls.origin import Origin
from gorums_mw._calls.quorum import UNDECIDED, Decision
from gorums_mw._calls.spec import CallSpec
from gorums_mw._calls.trace import CallTrace
from gorums_mw._errors import QuorumCallError
from gorums_mw._stream.channel import Entries
from gorums_mw._telemetry import (
    SPAN_CORRECTABLE,
    SPAN_MULTICAST,
    SPAN_QUORUM_CALL,
    Telemetry,
)

T = TypeVar("T")
Q = TypeVar("Q", bound=ProtoMessage)


class ConfigurationCalls(Sequence[Node]):
    """The calls of a ``Configuration`` (its base: the configuration adds
    membership and the algebra)."""

    __slots__ = ()

    _nodes: Sequence[Node]
    _telemetry: Telemetry
    _origin: Origin | None

    if TYPE_CHECKING:

        @property
        def ids(self) -> tuple[int, ...]: ...
        @property
        def configured(self) -> int: ...
        def majority(self) -> int: ...

    @overload
    async def quorum_call(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        quorum: int | None = None,
        timeout: float | None = None,
        quorum_function: None = None,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> dict[int, R]: ...
    @overload
    async def quorum_call(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        quorum: None = None,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T],
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> T: ...
    async def quorum_call(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        quorum: int | None = None,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T] | None = None,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> dict[int, R] | T:
        """Call ``method`` on every node; return once a quorum is reached.

        The request goes to every node at once. Without ``quorum_function``
        the call returns the replies as soon as ``quorum`` of them are in
        (Go Gorums' ``Majority()``, ``Threshold(n)``, ``First()``, ``All()``
        are ``quorum=None``, ``n``, ``1``, ``len(config)``). With it, the
        function is called with the replies received so far after each
        reply, and the first value it returns that is not None is the
        call's result (Go's quorum functions). A node's error never counts
        as a reply.

        Args:
            method: the protobuf full method name, ``pkg.Service.Method``
                (or grpc's ``/pkg.Service/Method``).
            request: the request message, sent to every node.
            reply_type: the generated class of the reply.
            quorum: replies needed, at least 1; default ``majority()``, a
                majority of the configured replicas (``configured``).
            timeout: seconds for the whole call, including any wait for room
                in a node's send buffer; None waits until every node has
                replied or failed.
            quorum_function: decides when the call is done and what it
                returns; replaces ``quorum``.
            metadata: ``(key, value)`` entries sent with every request (the
                handlers read them as invocation metadata).
            interceptors: wrap the call (``QuorumInterceptor``): per-node
                requests, filtered or rewritten replies, an early end.

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
        self._require_started()
        spec = CallSpec.of(method, request, reply_type, metadata=metadata, timeout=timeout)
        if quorum_function is None:
            needed = self._needed(spec.method, quorum)
        elif quorum is not None:
            raise ValueError("give quorum or quorum_function, not both")
        else:
            needed = 0
        size = len(self._nodes)
        with CallTrace(
            self._telemetry, SPAN_QUORUM_CALL, "quorum_call", spec.method, size=size, quorum=needed
        ) as trace:
            fanout = Fanout(self._nodes, spec, trace, reply_type)
            decision = Decision(size, needed, quorum_function)
            try:
                if interceptors:
                    info = CallInfo(spec.method, request, self, spec.metadata)
                    answers = intercept(info, answers_of(fanout, info.payload_for), interceptors)
                    await decision.consume(answers)
                else:
                    payload = request.SerializeToString()
                    fanout.on_answer = decision.add
                    fanout.start(lambda _: payload)
                    await decision.done
            finally:
                fanout.finish()
            trace.finish(replies=len(decision.replies))
            if decision.result is UNDECIDED:
                raise QuorumCallError(spec.method, needed, decision.replies, decision.errors)
            return decision.result  # type: ignore[return-value]

    async def replies(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        ignore_errors: bool = False,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
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
            ignore_errors: yield only replies, never errors (Go's ``IgnoreErrors()``).
            metadata: as ``quorum_call``.
            interceptors: as ``quorum_call``.
        """
        self._require_started()
        spec = CallSpec.of(method, request, reply_type, metadata=metadata, timeout=timeout)
        answers = self._answers(
            SPAN_QUORUM_CALL, "replies", spec, request, reply_type, interceptors
        )
        try:
            async for answer in answers:
                if answer.error is None or not ignore_errors:
                    yield answer
        finally:
            await answers.aclose()

    @overload
    def correctable(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: None = None,
        ignore_errors: bool = False,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> AsyncIterator[NodeReply[R]]: ...
    @overload
    def correctable(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T],
        ignore_errors: bool = False,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
    ) -> AsyncIterator[T]: ...
    def correctable(
        self,
        method: str,
        request: Q,
        reply_type: type[R],
        *,
        timeout: float | None = None,
        quorum_function: QuorumFunction[R, T] | None = None,
        ignore_errors: bool = False,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, R]] = (),
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

        Args:
            method: the server-streaming method's full name, as in ``quorum_call``.
            request: the request message, sent to every node.
            reply_type: the generated class of the replies.
            timeout: seconds until the iteration ends.
            quorum_function: turns the latest replies into a result.
            ignore_errors: without ``quorum_function``, yield only replies.
            metadata: ``(key, value)`` entries sent with every request.
            interceptors: wrap the call, as in ``quorum_call``.

        Raises:
            ValueError: as ``quorum_call`` (at once).
            TypeError: as ``quorum_call`` (at once).
            RuntimeError: called outside the event loop of the streams.
        """
        self._require_started()
        spec = CallSpec.of(
            method, request, reply_type, kind="stream", metadata=metadata, timeout=timeout
        )
        answers = self._answers(
            SPAN_CORRECTABLE, "correctable", spec, request, reply_type, interceptors
        )
        if quorum_function is None:
            return without_errors(answers) if ignore_errors else answers
        return improving(answers, quorum_function)

    async def _answers(
        self,
        span: str,
        kind: str,
        spec: CallSpec,
        request: Q,
        reply_type: type[R],
        interceptors: Sequence[QuorumInterceptor[Q, R]],
    ) -> AsyncGenerator[NodeReply[R], None]:
        """The answers of a call that yields them (``replies``, ``correctable``),
        through the interceptors, recorded as one traced call."""
        with CallTrace(self._telemetry, span, kind, spec.method, size=len(self._nodes)) as trace:
            info = CallInfo(spec.method, request, self, spec.metadata)
            fanned = answers_of(Fanout(self._nodes, spec, trace, reply_type), info.payload_for)
            answers = intercept(info, fanned, interceptors)
            received = 0
            try:
                async for answer in answers:
                    received += answer.error is None
                    yield answer
            finally:
                await close(answers)
                await fanned.aclose()
                trace.finish(replies=received)

    async def multicast(
        self,
        method: str,
        request: Q,
        *,
        metadata: Entries = (),
        interceptors: Sequence[QuorumInterceptor[Q, Any]] = (),
    ) -> tuple[int, ...]:
        """Send ``method`` one-way to every connected node; never waits.

        A node that is disconnected, or whose send buffer is full (a peer
        that stopped reading), does not get its copy: it is dropped, not
        queued, so one stuck peer never blocks the others. Interceptors can
        give each node its own request (``CallInfo.map_request``); there are
        no replies for them to see.

        Returns:
            The IDs of the nodes it was sent to.

        Raises:
            ValueError: as ``quorum_call``.
            TypeError: as ``quorum_call``.
            RuntimeError: called outside the event loop of the streams.
        """
        self._require_started()
        spec = CallSpec.of(method, request, None, kind="one_way", metadata=metadata)
        with CallTrace(
            self._telemetry, SPAN_MULTICAST, "multicast", spec.method, size=len(self._nodes)
        ) as trace:
            info = CallInfo(spec.method, request, self, spec.metadata)
            fanout: Fanout[ProtoMessage] = Fanout(self._nodes, spec, trace, ProtoMessage)
            sent: tuple[int, ...] = ()
            if interceptors:
                payloads: list[tuple[int, ...]] = []
                answers = intercept(info, _casts(fanout, info, payloads), interceptors)
                async for _ in answers:
                    pass
                sent = payloads[0] if payloads else ()
            else:
                sent = fanout.cast(info.payload_for)
            trace.finish(sent=len(sent))
            return sent

    def _needed(self, method: str, quorum: int | None) -> int:
        if quorum is None:
            needed = self.majority()
            why = (
                f"a majority of the {self.configured} configured"
                if self._origin is not None
                else "a majority of its nodes"
            )
        elif isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
            raise ValueError(f"quorum must be a positive int, got {quorum!r}")
        else:
            needed = quorum
            why = f"quorum={quorum}"
            if self._origin is not None:
                why += f"; {self.configured} are configured"
        if needed > len(self._nodes):
            reason = (
                f"needs {needed} {'replica' if needed == 1 else 'replicas'} ({why}),"
                f" and this configuration has"
                f" {len(self._nodes)} ({list(self.ids)})"
            )
            raise QuorumCallError(method, needed, {}, {}, reason=reason)
        return needed

    def _require_started(self) -> None:
        """Raise unless the managers whose streams carry this configuration's calls run."""
        if self._origin is not None:
            self._origin.require_started()


async def _casts(
    fanout: Fanout[ProtoMessage], info: CallInfo[Any], sent: list[tuple[int, ...]]
) -> AsyncGenerator[NodeReply[Any], None]:
    """Send a one-way request to every node on first iteration; there are no replies."""
    sent.append(fanout.cast(info.payload_for))
    return
    yield  # an async generator that yields nothing
