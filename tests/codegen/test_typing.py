"""mypy --strict on a user program of the generated calls (tests/calltypes_gorums.pyi).

One snippet, one mypy run: the lines marked ``# E: code`` must be exactly
the errors mypy reports (a wrong request type, a wrong reply type, a
misspelled method, ...), and a quorum function's result type must flow
through to the call's result.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = textwrap.dedent(
    """
    from collections.abc import Mapping

    from google.protobuf.empty_pb2 import Empty

    from gorums_mw import Configuration, Node, NodeReply
    from tests import calltypes_pb2 as pb
    from tests.calltypes_gorums import AdminNode, CallsConfiguration, CallsNode


    def newest(replies: Mapping[int, pb.Entry]) -> pb.Entry | None:
        return max(replies.values(), key=lambda e: e.version) if len(replies) >= 2 else None


    async def right(config: Configuration, node: Node) -> None:
        calls = CallsConfiguration(config)
        replies: dict[int, pb.Entry] = await calls.Read(pb.Key(key="k"), quorum=2, timeout=1.0)
        entry: pb.Entry = await calls.Read(pb.Key(key="k"), quorum_function=newest)
        count: int = await calls.Read(pb.Key(), quorum_function=lambda r: len(r) or None)
        async for answer in calls.replies.Read(pb.Key(), timeout=1, ignore_errors=True):
            reply: NodeReply[pb.Entry] = answer
        async for update in calls.Watch(pb.Key(), timeout=1):
            latest: NodeReply[pb.Entry] = update
        async for best in calls.Watch(pb.Key(), quorum_function=newest):
            better: pb.Entry = best
        sent: tuple[int, ...] = await calls.Publish(pb.Entry())
        one = CallsNode(node)
        got: pb.Entry = await one.Get(pb.Key(), timeout=1)
        ack: pb.Ack = await one.Set(pb.Entry())
        ok: bool = await one.Notify(pb.Entry())
        stats: pb.Entry.Stats = await AdminNode(node).Stats(Empty())
        chosen = await calls.Read(pb.Key(), quorum_function=newest)
        reveal_type(chosen)  # N: tests.calltypes_pb2.Entry
        reveal_type(await calls.Read(pb.Key()))  # N: dict[int, tests.calltypes_pb2.Entry]


    async def wrong(config: Configuration, node: Node) -> None:
        calls = CallsConfiguration(config)
        await calls.Read(pb.Entry())  # E: call-overload "Entry"
        replies: dict[int, pb.Ack] = await calls.Read(pb.Key())  # E: assignment "dict[int, Ack]"
        await calls.Raed(pb.Key())  # E: attr-defined "Raed"
        await CallsNode(node).Read(pb.Key())  # E: attr-defined "Read"
        await calls.Read(pb.Key(), quorum=2, quorum_function=newest)  # E: call-overload
        ack: pb.Ack = await CallsNode(node).Get(pb.Key())  # E: assignment "Ack"
        await CallsNode(node).Set(pb.Key())  # E: arg-type "Key"
        CallsConfiguration(node)  # E: arg-type "Node"
        await calls.Publish(pb.Entry(), timeout=1)  # E: call-arg "timeout"
        text: str = await calls.Read(pb.Key(), quorum_function=newest)  # E: arg-type
        await CallsNode(node).Get(pb.Key(), quorum=2)  # E: call-arg "quorum"
        calls.Watch(pb.Entry())  # E: call-overload "Entry"
        async for answer in calls.replies.Read(pb.Key()):
            other: NodeReply[pb.Ack] = answer  # E: assignment "NodeReply[Ack]"
        calls.Read(pb.Key())  # E: unused-coroutine
    """
)


def test_mypy_checks_requests_replies_and_method_names(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    lines = SNIPPET.splitlines()
    expected_errors = {
        number: marker.groups()
        for number, line in enumerate(lines, start=1)
        if (marker := re.search(r"# E: ([\w-]+)(?: (.*))?$", line))
    }
    reported = {}
    revealed = {}
    for line in result.stdout.splitlines():
        if found := re.match(r".*snippet\.py:(\d+): error: (.*)  \[([\w-]+)\]$", line):
            reported[int(found[1])] = (found[3], found[2])
        elif found := re.match(r'.*snippet\.py:(\d+): note: Revealed type is "(.*)"$', line):
            revealed[int(found[1])] = found[2]
    assert set(reported) == set(expected_errors), output
    for number, (code, fragment) in expected_errors.items():
        assert reported[number][0] == code, (lines[number - 1], reported[number])
        if fragment:
            assert fragment.strip('"') in reported[number][1], (lines[number - 1], reported[number])
    expected_notes = {
        number: marker[1]
        for number, line in enumerate(lines, start=1)
        if (marker := re.search(r"# N: (.*)$", line))
    }
    assert revealed == expected_notes, output
