"""Fixtures for multi-host tests: a fresh network of namespace hosts per test."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.multihost import netns


@functools.cache
def _unavailable() -> str | None:
    return netns.unavailable_reason()


@pytest.fixture(scope="session", autouse=True)
def _sweep_namespaces() -> Iterator[None]:
    """Last, remove whatever this run's networks left (normally nothing)."""
    yield
    if _unavailable() is None:
        netns.sweep()


@pytest.fixture
def require_netns() -> None:
    """Skip the test where network namespaces cannot be made (not root, no ip, refused)."""
    reason = _unavailable()
    if reason is not None:
        pytest.skip(f"cannot create network namespaces here: {reason}")


@pytest.fixture
async def network(require_netns: None) -> AsyncIterator[netns.Network]:
    """Three hosts on one bridge; everything is removed after the test."""
    async with netns.Network(3) as net:
        yield net
