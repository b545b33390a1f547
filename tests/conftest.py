"""Shared fixtures: span capture, context stand-ins and real loopback servers."""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # before grpc is imported: no transport chatter

import asyncio
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from grpc import aio
from hypothesis import settings
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gorums_mw import OutboundManager, System

SLOW_DESELECTED = pytest.StashKey[int]()

# Hypothesis checks laws here, not speed: its per-example deadline fails
# examples that a loaded 2-core machine merely runs slowly.
settings.register_profile("gorums", deadline=None)
settings.load_profile("gorums")


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    """Count the slow tests the default ``-m "not slow"`` leaves out."""
    if items:
        config = items[0].config
        slow = sum(1 for item in items if item.get_closest_marker("slow") is not None)
        config.stash[SLOW_DESELECTED] = config.stash.get(SLOW_DESELECTED, 0) + slow


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say why tests were deselected, and how to run them."""
    slow = config.stash.get(SLOW_DESELECTED, 0)
    if slow:
        terminalreporter.write_line(
            f"{slow} deselected: marked slow (long variants of the reliability tests); "
            "run them with scripts/test -m slow"
        )


@dataclass
class Spans:
    """A tracer provider whose finished spans can be read back."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]

    def names(self) -> list[str]:
        return [span.name for span in self.exporter.get_finished_spans()]


@pytest.fixture(params=[True, False], ids=["batched", "plain"])
def both_framings(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[bool]:
    """Run a test on both wire forms: BatchedNodeStream and plain NodeStream.

    A module marks its tests ``pytest.mark.usefixtures("both_framings")``:
    every ``System`` and ``OutboundManager`` they make then dials (and
    serves) the form of the current parameter, so the same tests prove both.
    """
    batching: bool = request.param
    for cls in (System, OutboundManager):
        original = cls.__init__

        def init(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            kwargs.setdefault("batching", batching)
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)
    yield batching


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Spans(provider, exporter)
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Every data point by metric name."""
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


@dataclass
class FakeContext:
    """A stand-in for a ServicerContext: only peer() and invocation_metadata()."""

    peer_string: str
    metadata: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def peer(self) -> str:
        return self.peer_string

    def invocation_metadata(self) -> Sequence[tuple[str, str]]:
        return tuple(self.metadata)

    def __hash__(self) -> int:
        return id(self)


@dataclass
class Listener:
    """A bound address of a test server: what to dial and what the dialer's IP is."""

    family: str
    target: str
    client_ip: str


@pytest.fixture
def unix_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="gorums-") as directory:
        yield directory


def bind(server: aio.Server, family: str, unix_dir: str) -> Listener:
    """Bind ``server`` on loopback for ``family`` (ipv4, ipv6 or unix)."""
    if family == "ipv4":
        port = server.add_insecure_port("127.0.0.1:0")
        return Listener(family, f"127.0.0.1:{port}", "127.0.0.1")
    if family == "ipv6":
        port = server.add_insecure_port("[::1]:0")
        return Listener(family, f"[::1]:{port}", "[::1]")
    path = os.path.join(unix_dir, "server.sock")
    server.add_insecure_port(f"unix:{path}")
    return Listener(family, f"unix:{path}", "127.0.0.1")


async def eventually(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds, at most ``timeout`` seconds.

    Only for states that no event or ``wait_for_config`` announces (such as
    grpc finishing a cancelled handler); raises ``TimeoutError``.
    """
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(interval)
