"""Waiting for a configuration, bounded, with a timeout that says what was awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gorums_mw._calls.configuration import Configuration
from gorums_mw._inbound.membership import Membership


async def wait_until(
    membership: Membership,
    current: Callable[[], Configuration],
    cond: Callable[[Configuration], bool],
    timeout: float | None,
) -> Configuration:
    """Return ``current()`` once ``cond`` holds for it (woken by ``membership``'s changes).

    Raises:
        TimeoutError: ``timeout`` seconds passed first; it names ``cond`` and
            the configuration.
    """
    try:
        async with asyncio.timeout(timeout):
            return await membership.wait_for(current, cond)
    except TimeoutError:
        raise TimeoutError(
            f"waited {timeout} s for {describe_condition(cond)}; the configuration was"
            f" {current()!r}"
        ) from None


def describe_condition(cond: Callable[..., object]) -> str:
    """A condition's name for an error message (``<lambda> at file:line`` for a lambda)."""
    code = getattr(cond, "__code__", None)
    name = getattr(cond, "__qualname__", None) or repr(cond)
    if code is not None and name.endswith("<lambda>"):
        return f"the condition {name} at {code.co_filename}:{code.co_firstlineno}"
    return f"the condition {name}"
