"""A caller that claims an identity: ``python -m tests.multihost.claim_proc TARGET CLAIM...``.

Run in one host's namespace, it calls the replica at ``TARGET`` (``host:port``)
and prints one line per call, then ``done``:

- ``plain <CODE>``: ``echo.Echo.Say`` with no identity metadata (a control:
  an external client is served);
- for each ``CLAIM`` (``key=value`` pairs joined by ``&``, sent as call
  metadata, e.g. ``gorums-addr=10.213.7.13:9001``), numbered from 1:
  ``claim <n> unary <CODE> <details>`` for ``echo.Echo.Say`` and
  ``claim <n> stream <CODE> <details>`` for a NodeStream opened with it.

Every call has a 5 s deadline. A NodeStream that is accepted is held open
until then and reported as ``DEADLINE_EXCEEDED``; one that is refused ends at
once with the refusal's code.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import argparse
import asyncio
import sys

import grpc
from grpc import aio

from gorums_mw._wire import NODE_STREAM_PATH
from tests import echo_pb2

SAY_PATH = "/echo.Echo/Say"
DEADLINE = 5.0


def parse_claim(text: str) -> tuple[tuple[str, str], ...]:
    """``gorums-node-id=3&gorums-addr=h:1`` → metadata pairs."""
    pairs = []
    for item in text.split("&"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        pairs.append((key, value))
    return tuple(pairs)


def _say(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


async def _unary(channel: aio.Channel, metadata: tuple[tuple[str, str], ...]) -> str:
    say = channel.unary_unary(
        SAY_PATH,
        request_serializer=echo_pb2.EchoRequest.SerializeToString,
        response_deserializer=echo_pb2.EchoReply.FromString,
    )
    try:
        await say(echo_pb2.EchoRequest(text="claim"), metadata=metadata, timeout=DEADLINE)
    except aio.AioRpcError as exc:
        return f"{exc.code().name} {exc.details()}"
    return grpc.StatusCode.OK.name


async def _stream(channel: aio.Channel, metadata: tuple[tuple[str, str], ...]) -> str:
    # Raw bytes both ways: nothing is sent, and no reply is expected.
    open_stream = channel.stream_stream(NODE_STREAM_PATH, None, None)
    call = open_stream(None, metadata=metadata, timeout=DEADLINE)
    code = await call.code()
    details = await call.details()
    return f"{code.name} {details}"


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="host:port of the replica to call")
    parser.add_argument("claims", nargs="*", type=parse_claim, help="key=value&key=value")
    args = parser.parse_args(argv)
    async with aio.insecure_channel(args.target) as channel:
        _say("plain " + (await _unary(channel, ())).split()[0])
        for number, claim in enumerate(args.claims, start=1):
            _say(f"claim {number} unary {await _unary(channel, claim)}")
            _say(f"claim {number} stream {await _stream(channel, claim)}")
    _say("done")


if __name__ == "__main__":
    asyncio.run(main())
