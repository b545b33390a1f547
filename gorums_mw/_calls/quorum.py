"""Deciding a quorum call from its answers, as they arrive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final, Generic

import grpc

from gorums_mw._calls.answers import NodeReply, QuorumFunction, R
from gorums_mw._calls.iteration import close
from gorums_mw._errors import CallError

UNDECIDED: Final = object()
"""The result of a quorum call that reached no decision."""


class Decision(Generic[R]):
    """Collects a quorum call's answers; ``done`` resolves when it is decided.

    It is decided when ``needed`` replies are in (the result: the replies
    by node ID), or, with a quorum function (``needed`` 0), when the
    function returns a result; when all ``size`` nodes have answered; or as
    soon as more nodes failed than a quorum of ``needed`` can spare. A
    node's error never counts as a reply.
    """

    __slots__ = ("decide", "done", "errors", "needed", "replies", "result", "size")

    def __init__(
        self, size: int, needed: int, decide: QuorumFunction[R, object] | None = None
    ) -> None:
        self.size = size
        self.needed = needed
        self.decide = decide
        self.replies: dict[int, R] = {}
        self.errors: dict[int, CallError] = {}
        self.result: object = UNDECIDED
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, answer: NodeReply[R]) -> None:
        """Count one answer (a reply or an error); decide if it is time.

        Answers that arrive once it is decided are still counted (the
        deadline fails every silent node at once: each is listed), but
        decide nothing.
        """
        node_id = answer.node_id
        decided = self.done.done()
        if answer.error is None and answer.value is not None:
            self.replies[node_id] = answer.value
            self.errors.pop(node_id, None)
            if decided:
                return
            if self.decide is None:
                result: object = dict(self.replies) if len(self.replies) >= self.needed else None
            else:
                result = self.decide(self.replies)
            if result is not None:
                self.result = result
                self.done.set_result(None)
                return
        else:
            self.errors[node_id] = answer.error or CallError(
                grpc.StatusCode.UNKNOWN, "an interceptor dropped the reply", node_id
            )
            if decided:
                return
            if self.needed and len(self.errors) > self.size - self.needed:
                self.done.set_result(None)  # hopeless
                return
        if len(self.replies) + len(self.errors) >= self.size:
            self.done.set_result(None)

    async def consume(self, answers: AsyncIterator[NodeReply[R]]) -> None:
        """Count the answers of an iterator (intercepted ones) until decided or over."""
        try:
            async for answer in answers:
                self.add(answer)
                if self.done.done():
                    return
        finally:
            await close(answers)
