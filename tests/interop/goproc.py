"""The Go peer (``gorums-go-peer``, real upstream Go Gorums) as a child process of a test.

Every wait is bounded and reads the process's own output: ``READY <addr>``
once it listens, then the lines its subcommand prints. The process always
ends: ``stop()`` closes its stdin (the peer exits by itself then) and kills
it if it lingers; use ``GoPeer`` as an async context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "GORUMS_GO_PEER"

START_TIMEOUT = 10.0
"""Seconds a Go peer may take to print ``READY``."""


def go_peer_path() -> Path | None:
    """The Go peer binary named by ``GORUMS_GO_PEER`` (relative: to the repository root).

    Returns:
        None when the variable is unset or empty.

    Raises:
        FileNotFoundError: it is set but names no executable file.
    """
    value = os.environ.get(ENV_VAR, "")
    if not value:
        return None
    path = in_repository(value)
    if not is_executable(path):
        raise FileNotFoundError(f"{ENV_VAR}={value!r}: {path} is not an executable file")
    return path


def in_repository(value: str) -> Path:
    """``value`` as a path; a relative one is taken from the repository root."""
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def is_executable(path: Path) -> bool:
    """Whether ``path`` is a file this process may run."""
    return path.is_file() and os.access(path, os.X_OK)


class GoPeer:
    """One ``gorums-go-peer <subcommand> ...`` process."""

    def __init__(self, binary: Path, *args: str) -> None:
        self.binary = binary
        self.args = args
        self.addr = ""
        """What it printed after ``READY`` (its listening address), once started."""
        self.lines: list[str] = []
        """Every stdout line read so far."""
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr = bytearray()
        self._drain: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<GoPeer {' '.join(self.args)} addr={self.addr!r}>"

    async def start(self, *, ready: bool = True) -> None:
        """Start the process; with ``ready``, wait for its ``READY <addr>`` line."""
        self._proc = await asyncio.create_subprocess_exec(
            str(self.binary),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._proc.stderr is not None
        self._drain = asyncio.create_task(_drain(self._proc.stderr, self._stderr))
        if ready:
            line = await self.read_until(lambda text: text.startswith("READY "), START_TIMEOUT)
            self.addr = line.split()[1]

    async def read_line(self, timeout: float) -> str | None:
        """The next stdout line, or None at the end of output.

        Raises:
            TimeoutError: no line within ``timeout`` seconds.
        """
        assert self._proc is not None and self._proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                raw = await self._proc.stdout.readline()
        except TimeoutError:
            raise TimeoutError(
                f"{self!r}: no output line within {timeout} s{self._tail()}"
            ) from None
        if not raw:
            return None
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def read_until(self, done: Callable[[str], bool], timeout: float) -> str:
        """Read lines until one satisfies ``done``; return it.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            RuntimeError: the output ended first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            line = await self.read_line(max(0.0, deadline - loop.time()))
            if line is None:
                raise RuntimeError(f"{self!r} ended its output early{self._tail()}")
            if done(line):
                return line

    async def read_all(self, timeout: float) -> list[str]:
        """Read until the output ends (the process is done); return every line read.

        Raises:
            TimeoutError: it did not end within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self.read_line(max(0.0, deadline - loop.time())) is not None:
            pass
        return self.lines

    async def reports(self, timeout: float) -> dict[str, dict[str, Any]]:
        """A ``replica``'s ``REPORT`` lines by kind, read up to its ``DONE`` line."""
        await self.read_until(lambda line: line == "DONE", timeout)
        found: dict[str, dict[str, Any]] = {}
        for line in self.lines:
            if line.startswith("REPORT "):
                report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
                found[report["kind"]] = report
        return found

    async def stop(self) -> None:
        """End the process: close its stdin, kill it if it lingers; always reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                async with asyncio.timeout(3):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if self._drain is not None:
                await self._drain

    def _tail(self) -> str:
        text = self._stderr.decode(errors="replace").strip()
        return f"; stderr: {text[-2000:]}" if text else ""

    async def __aenter__(self) -> GoPeer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    """Keep a pipe from filling up: collect what the process writes to it."""
    while chunk := await stream.read(65536):
        into += chunk
