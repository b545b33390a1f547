"""Fixtures of the interop tests: the real Go Gorums (``gorums-go-peer``) as child processes.

The tests skip when ``GORUMS_GO_PEER`` is unset (``.ci/run`` sets it when
the binary is beside the repository) and fail when it names no executable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.interop.goproc import ENV_VAR, GoPeer, go_peer_path

StartGo = Callable[..., Awaitable[GoPeer]]


@pytest.fixture
def go_binary() -> Path:
    """The Go peer binary; skips the test when ``GORUMS_GO_PEER`` is unset."""
    try:
        path = go_peer_path()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    if path is None:
        pytest.skip(f"{ENV_VAR} is unset: no Go Gorums peer to test against")
    return path


@pytest.fixture
async def start_go(go_binary: Path) -> AsyncIterator[StartGo]:
    """Start ``gorums-go-peer <args>`` (waits for ``READY``); every one is stopped at teardown."""
    peers: list[GoPeer] = []

    async def start(*args: str, ready: bool = True) -> GoPeer:
        peer = GoPeer(go_binary, *args)
        peers.append(peer)
        await peer.start(ready=ready)
        return peer

    try:
        yield start
    finally:
        for peer in reversed(peers):
            await peer.stop()
