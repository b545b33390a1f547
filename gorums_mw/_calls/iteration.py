"""Answers as async iterators: a call's own (``answers_of``), and the small
iterators that reshape them, apart from the engine that feeds them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from gorums_mw._calls.answers import NodeReply, QuorumFunction, R
from gorums_mw._calls.fanout import Fanout, PayloadOf

T = TypeVar("T")


async def answers_of(
    fanout: Fanout[R], payload_of: PayloadOf
) -> AsyncGenerator[NodeReply[R], None]:
    """``fanout``'s answers as an async iterator: the requests go out on the first
    iteration (so interceptors can map them first); closing it ends the call."""
    fanout.start(payload_of)
    try:
        while (answer := await fanout.next_answer()) is not None:
            yield answer
    finally:
        fanout.finish()


async def close(answers: AsyncIterator[Any]) -> None:
    """Close ``answers`` if it can be closed (an interceptor may return any iterator)."""
    aclose = getattr(answers, "aclose", None)
    if aclose is not None:
        await aclose()


async def improving(
    answers: AsyncGenerator[NodeReply[R], None], quorum_function: QuorumFunction[R, T]
) -> AsyncIterator[T]:
    """The quorum function's results over the latest reply of each node."""
    latest: dict[int, R] = {}
    try:
        async for answer in answers:
            if answer.value is None:
                continue
            latest[answer.node_id] = answer.value
            result = quorum_function(latest)
            if result is not None:
                yield result
    finally:
        await answers.aclose()


async def without_errors(
    answers: AsyncGenerator[NodeReply[R], None],
) -> AsyncIterator[NodeReply[R]]:
    """The replies among ``answers``, the errors left out."""
    try:
        async for answer in answers:
            if answer.error is None:
                yield answer
    finally:
        await answers.aclose()
