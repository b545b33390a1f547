"""A replica whose memory a test floods: ``python -m tests.reliability.flood_server``.

It runs a one-node ``System`` whose ``echo.Echo.Say`` replies with the
request's text (so every reply is as large as its request), prints
``ready <address>`` once it listens, and answers ``memory?`` on stdin with
``memory <VmRSS kB> <VmHWM kB>`` (its resident set now and at its peak,
from ``/proc/self/status``). It stops when its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from gorums_mw import Limits, System, with_nodes
from tests._echo import setup


def memory() -> str:
    """``memory <VmRSS kB> <VmHWM kB>``."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()[0] if value.split() else ""
    return f"memory {fields['VmRSS']} {fields['VmHWM']}"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--max-message", type=int, default=Limits().max_message)
    parser.add_argument("--stream-buffer", type=int, default=Limits().stream_buffer)
    parser.add_argument("--total-buffer", type=int, default=Limits().total_buffer)
    args = parser.parse_args()
    limits = Limits(
        max_message=args.max_message,
        stream_buffer=args.stream_buffer,
        total_buffer=args.total_buffer,
    )
    system = System(1, with_nodes({1: args.address}), limits=limits)
    setup(system)
    loop = asyncio.get_running_loop()
    async with system:
        print(f"ready {system.address}", flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "memory?":
                print(memory(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
