"""Fixtures of the interop tests: the real Go Gorums (``gorums-go-peer``) as child processes.

The tests skip when ``GORUMS_GO_PEER`` is unset (``.ci/run`` sets it when
the binary is beside the repository) and fail when it names no executable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path

import pytest

from tests.interop.goproc import ENV_VAR, GoPeer, go_peer_path

StartGo = Callable[..., Awaitable[GoPeer]]

NO_GO_PEER = (
    f"{ENV_VAR} is unset, so the Go interop tests did not run: set it to the gorums-go-peer "
    "program (../shared/interop/go-peer/gorums-go-peer beside this repository; .ci/run does)"
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Skips for want of the Go peer share one location, so ``-ra`` folds them into one line."""
    report = yield
    if (
        report.skipped
        and isinstance(report.longrepr, tuple)
        and report.longrepr[2].endswith(NO_GO_PEER)
    ):
        report.longrepr = (str(Path(__file__).parent), None, report.longrepr[2])
    return report


@pytest.fixture
def go_binary() -> Path:
    """The Go peer binary; skips the test when ``GORUMS_GO_PEER`` is unset."""
    try:
        path = go_peer_path()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    if path is None:
        pytest.skip(NO_GO_PEER)
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
