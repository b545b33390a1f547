"""Replica processes for fault tests: start, read their reports, kill, pause."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.reliability.replica_proc import node_args

ROOT = Path(__file__).resolve().parents[2]


class ReplicaProcess:
    """One ``tests.reliability.replica_proc`` child process."""

    def __init__(self, node_id: int, nodes: dict[int, str], keepalive: tuple[float, float]) -> None:
        self.node_id = node_id
        self.nodes = nodes
        self.keepalive = keepalive
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20) -> None:
        """Start the process and wait for its ``ready`` line."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.reliability.replica_proc",
            "--id",
            str(self.node_id),
            "--nodes",
            node_args(self.nodes),
            "--keepalive",
            *(str(value) for value in self.keepalive),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
        )
        async with asyncio.timeout(timeout):
            while True:
                assert self.proc.stdout is not None
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"replica {self.node_id} exited before it was ready")
                if line.startswith(b"ready"):
                    return

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            await self.proc.wait()
        self.proc = None
