"""Flooding a real server process: its memory stays within the byte bounds of ``Limits``.

A caller without ``gorums-addr`` opens a NodeStream, sends 1 MiB requests
whose replies are as large, and never reads a reply. The server's peak
resident set, read from ``/proc``, must grow by about the buffer bound plus
grpc's own per-stream transport buffers, not by what was sent (before byte
bounds, 300 MiB sent grew it by about 320 MiB). Measured here: one stream
with the default 8 MiB bound grows it by 23-27 MiB, four streams with a 16
MiB total by 46-55 MiB (with grpc's default BDP probing, which ``Limits``
turns off, four streams sometimes grew it by 340 MiB).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from grpc import aio

from gorums_mw._proto.stream_pb2 import Message
from gorums_mw._wire import NODE_STREAM_PATH
from gorums_mw.testing import free_ports
from tests import echo_pb2
from tests.reliability._procs import ROOT

MiB = 1024 * 1024
SAY = "echo.Echo.Say"
FIRST_STREAM_SLACK = 32 * MiB
"""Memory one flooding stream may add beyond the byte bound: grpc's transport
buffers and window, the messages being parsed and written, allocator slack."""
STREAM_SLACK = 16 * MiB
"""The same for each further flooding stream."""


class FloodServer:
    def __init__(self, proc: asyncio.subprocess.Process, address: str) -> None:
        self.proc = proc
        self.address = address

    async def memory(self) -> tuple[int, int]:
        """(current, peak) resident set in bytes."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"memory?\n")
        async with asyncio.timeout(10):
            line = await self.proc.stdout.readline()
        _, rss, hwm = line.decode().split()
        return int(rss) * 1024, int(hwm) * 1024


Start = Callable[..., Awaitable[FloodServer]]


@pytest.fixture
async def flood_server() -> AsyncIterator[Start]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> FloodServer:
        address = f"127.0.0.1:{free_ports(1)[0]}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.reliability.flood_server",
            "--address",
            address,
            *args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
        )
        procs.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = await proc.stdout.readline()
        assert line.startswith(b"ready"), line
        return FloodServer(proc, address)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def request(msg_id: int, size: int) -> Message:
    payload = echo_pb2.EchoRequest(text="x" * size).SerializeToString()
    return Message(message_seq_no=msg_id, method=SAY, payload=payload)


def node_stream(channel: aio.Channel) -> aio.StreamStreamCall[Message, Message]:
    """A NodeStream on ``channel`` without ``gorums-addr``, as an external caller opens one."""
    return channel.stream_stream(
        NODE_STREAM_PATH,
        request_serializer=Message.SerializeToString,
        response_deserializer=Message.FromString,
    )()


async def flood(address: str, count: int) -> None:
    """Send ``count`` 1 MiB requests on one NodeStream; read no reply."""
    async with aio.insecure_channel(address) as channel:
        stream = node_stream(channel)
        async with asyncio.timeout(120):
            for msg_id in range(1, count + 1):
                await stream.write(request(msg_id, MiB))
        stream.cancel()


async def warm_up(address: str) -> None:
    """A few large calls that are read, so grpc's buffers exist before the baseline."""
    async with aio.insecure_channel(address) as channel:
        stream = node_stream(channel)
        for msg_id in range(1, 4):
            await stream.write(request(msg_id, MiB))
            async with asyncio.timeout(10):
                reply = await stream.read()
            assert isinstance(reply, Message) and reply.message_seq_no == msg_id
        stream.cancel()


@pytest.mark.timeout(180)
async def test_one_flooding_stream_is_bounded_by_the_stream_buffer(flood_server: Start) -> None:
    server = await flood_server()  # default Limits: 8 MiB per stream
    await warm_up(server.address)
    baseline, _ = await server.memory()
    await flood(server.address, 300)
    _, peak = await server.memory()
    assert peak - baseline < 8 * MiB + FIRST_STREAM_SLACK, (baseline, peak)


@pytest.mark.timeout(180)
async def test_many_flooding_streams_are_bounded_by_the_total_buffer(flood_server: Start) -> None:
    server = await flood_server("--stream-buffer", str(8 * MiB), "--total-buffer", str(16 * MiB))
    await warm_up(server.address)
    baseline, _ = await server.memory()
    # 600 MiB sent; the four streams' own bounds (32 MiB) exceed the total.
    await asyncio.gather(*(flood(server.address, 150) for _ in range(4)))
    _, peak = await server.memory()
    assert peak - baseline < 16 * MiB + FIRST_STREAM_SLACK + 3 * STREAM_SLACK, (baseline, peak)
