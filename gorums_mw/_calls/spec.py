"""A call's options, checked once and carried through the engine as one frozen value."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Literal, NamedTuple, cast

from google.protobuf.message import Message as ProtoMessage

from gorums_mw._calls.method_check import Shape, check_call
from gorums_mw._stream.channel import Entries

Kind = Literal["unary", "stream", "one_way"]
"""What the nodes send back: one reply each, several each (a server-streaming
method: Go Gorums' correctable calls), or nothing."""


class CallSpec(NamedTuple):
    """What one call sends and how long it may take (immutable: a tuple, the
    cheapest frozen value to make once per call).

    Attributes:
        method: the full method name, ``pkg.Service.Method``.
        kind: what the nodes send back.
        metadata: entries sent with every request.
        timeout: seconds the call may take (None: no bound), for messages.
        deadline: the loop time when the call's time is up (None: never).
    """

    method: str
    kind: Kind = "unary"
    metadata: Entries = ()
    timeout: float | None = None
    deadline: float | None = None

    @classmethod
    def of(
        cls,
        method: object,
        request: ProtoMessage,
        reply_type: type[ProtoMessage] | None,
        *,
        kind: Kind = "unary",
        metadata: object = (),
        timeout: object = None,
    ) -> CallSpec:
        """Check a call's public arguments and fix its deadline from now.

        What comes from the caller is typed ``object`` here: it is checked,
        so a wrong type gets an error that says what is wrong.

        Raises:
            ValueError: ``method`` is malformed or unknown to its service, or
                ``timeout`` is not a non-negative number.
            TypeError: the request or reply type is not the method's (when
                its service is known locally), or ``metadata`` is not pairs
                of ``str``.
            RuntimeError: no event loop runs in this thread.
        """
        shape: Shape = "server_streaming" if kind == "stream" else "unary"
        reply_name = reply_type.DESCRIPTOR.full_name if reply_type is not None else None
        name = check_call(method, request.DESCRIPTOR.full_name, reply_name, shape)
        deadline = deadline_of(timeout)
        return cls(name, kind, checked_metadata(metadata), cast(float | None, timeout), deadline)


def deadline_of(timeout: object) -> float | None:
    """The loop time at which a call with ``timeout`` seconds ends (None: never).

    Raises:
        ValueError: ``timeout`` is not a non-negative number.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(
            f"timeout must be a non-negative number of seconds or None, got {timeout!r}"
        )
    return asyncio.get_running_loop().time() + timeout


def checked_metadata(metadata: object) -> Entries:
    """Per-call metadata entries, checked: ``(key, value)`` pairs of text.

    Raises:
        TypeError: ``metadata`` is not pairs of ``str``.
    """
    if not metadata:
        return ()
    if (
        isinstance(metadata, str | bytes)
        or not isinstance(metadata, Iterable)
        or not all(_is_entry(pair) for pair in metadata)
    ):
        raise TypeError(f"metadata must be (key, value) pairs of str, got {metadata!r}")
    return tuple(metadata)


def _is_entry(pair: object) -> bool:
    return (
        isinstance(pair, tuple)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], str)
    )
