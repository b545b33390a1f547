"""gorums-mw on uvloop, for applications that opt in (the ``uvloop`` extra)."""

from __future__ import annotations

import asyncio

import pytest

from gorums_mw.testing import LocalReplicas
from tests import echo_pb2
from tests._echo import setup

uvloop = pytest.importorskip("uvloop", reason="the uvloop extra is not installed")


def test_replicas_call_each_other_on_uvloop() -> None:
    async def main() -> tuple[type, list[int]]:
        async with LocalReplicas(3, setup) as replicas:
            await replicas.wait_full()
            replies = (
                await replicas[1]
                .config()
                .quorum_call(
                    "echo.Echo.Say", echo_pb2.EchoRequest(text="u"), echo_pb2.EchoReply, timeout=5
                )
            )
            return type(asyncio.get_running_loop()), sorted(replies)

    loop_type, replied = uvloop.run(main())
    assert loop_type is uvloop.Loop
    assert len(replied) >= 2


def test_the_library_never_sets_a_loop_policy() -> None:
    import gorums_mw  # noqa: F401  (importing it must change nothing)

    assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
