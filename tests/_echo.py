"""The plain Echo servicer many tests serve: ``Say`` replies with the request's text."""

from __future__ import annotations

from typing import Any

from gorums_mw import System
from tests import echo_pb2, echo_pb2_grpc


class Echo(echo_pb2_grpc.EchoServicer):
    async def Say(self, request: Any, context: Any) -> echo_pb2.EchoReply:
        return echo_pb2.EchoReply(text=request.text)


def setup(system: System) -> None:
    """Serve ``Echo`` on ``system``."""
    system.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, Echo())
