"""Each example runs as a user would run it: ``python -m examples.X``, in a subprocess."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from examples.storage.replica import Store, Value
from examples.storage.workload import Register
from gorums_mw.testing import free_ports

ROOT = Path(__file__).resolve().parent.parent.parent


def run_example(*args: str, timeout: float = 50) -> subprocess.CompletedProcess[str]:
    """Run ``python -m examples.<args>`` from the project root and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_storage_demo_survives_a_restart() -> None:
    result = run_example("examples.storage")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "storage: 3 replicas on loopback: 1=127.0.0.1:" in out
    assert "all 3 replicas connected; running 300 operations" in out
    stop = out.index("stopping replica 3 after 100 operations")
    restart = out.index("restarting replica 3 after 200 operations")
    # The live configuration is printed: 3 leaves, then joins again.
    assert "replica 1: configuration [1, 2]" in out[stop:restart]
    assert "replica 1: configuration [1, 2, 3]" in out[restart:]
    assert "replica 3: configuration [1, 2, 3]" in out[restart:]
    assert "replica 3 is back in every configuration" in out
    summary = re.search(r"summary: (\d+) operations .*: (\d+) failed, (\d+) wrong", out)
    assert summary is not None, out
    assert summary.groups() == ("304", "0", "0")
    assert re.search(r"latency: p50 [\d.]+ ms, p99 [\d.]+ ms", out)
    assert "OK: every operation succeeded" in out


def test_storage_refuses_a_demo_without_quorum_after_a_stop() -> None:
    result = run_example("examples.storage", "--replicas", "2")
    assert result.returncode == 2
    assert "--replicas >= 3" in result.stderr


class Replica:
    """One ``--id`` replica process, read line by line with bounded waits."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def wait_for(self, text: str, timeout: float = 10) -> str:
        """Read stdout until a line contains ``text``; return that line."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                assert line, f"replica exited; output so far: {self.lines}"
                self.lines.append(line)
                if text in line:
                    return line

    async def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; return the exit code and stderr."""
        self.process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(self.process.communicate(), 10)
        assert self.process.returncode is not None
        return self.process.returncode, stderr.decode()


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[str, dict[int, Replica]]]:
    """Three storage replicas, one per process, all connected."""
    nodes = ",".join(f"{i}=127.0.0.1:{port}" for i, port in enumerate(free_ports(3), start=1))
    replicas: dict[int, Replica] = {}
    try:
        for node_id in (1, 2, 3):
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "examples.storage",
                "--id",
                str(node_id),
                "--nodes",
                nodes,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            replicas[node_id] = Replica(process)
        for node_id, replica in replicas.items():
            line = await replica.wait_for("listening on")
            assert f"replica {node_id} listening on 127.0.0.1:" in line
            assert "health SERVING while 2 of 3 replicas are connected" in line
        for replica in replicas.values():
            await replica.wait_for("configuration [1, 2, 3]")
        yield nodes, replicas
    finally:
        for replica in replicas.values():
            if replica.process.returncode is None:
                replica.process.kill()
                await replica.process.communicate()


async def workload(nodes: str, ops: int) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        run_example, "examples.storage", "--nodes", nodes, "--ops", str(ops)
    )


async def test_storage_one_replica_per_process(cluster: tuple[str, dict[int, Replica]]) -> None:
    nodes, replicas = cluster
    result = await workload(nodes, 60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "summary: 60 operations" in result.stdout and "0 failed, 0 wrong" in result.stdout

    # Ctrl-C stops a replica cleanly; the other two still make a quorum.
    code, stderr = await replicas[3].interrupt()
    assert code == 130 and "interrupted: stopped cleanly" in stderr, stderr
    await replicas[1].wait_for("configuration [1, 2]")
    result = await workload(nodes, 30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed, 0 wrong" in result.stdout

    # With one replica left there is no quorum: every operation fails, exit 1.
    code, stderr = await replicas[2].interrupt()
    assert code == 130, stderr
    await replicas[1].wait_for("configuration [1]")
    result = await workload(nodes, 5)
    assert result.returncode == 1
    assert "5 failed" in result.stdout and "FAILED" in result.stdout

    code, stderr = await replicas[1].interrupt()
    assert code == 130 and "interrupted: stopped cleanly" in stderr, stderr


def test_storage_store_in_a_file_has_its_data_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "replica.jsonl"
    store = Store(path)
    newest = Value(key="k", value="b", timestamp=2, writer=3)
    assert store.put(Value(key="k", value="a", timestamp=1, writer=1))
    assert store.put(newest)
    assert not store.put(Value(key="k", value="old", timestamp=1, writer=2))
    store.close()
    with path.open("a") as file:
        file.write('{"key": "k", "value": "cut sh')  # a line the process never finished
    again = Store(path)
    assert again.get("k") == newest
    assert again.put(Value(key="j", value="c", timestamp=1, writer=1))
    again.close()
    third = Store(path)
    assert (third.get("k"), third.get("j").value) == (newest, "c")
    third.close()


def test_storage_file_and_keepalive_options_are_for_a_replica() -> None:
    result = run_example("examples.storage", "--data", "x.jsonl", "--keepalive", "1")
    assert result.returncode == 2
    assert "--listen, --data and --keepalive need --id" in result.stderr


def test_register_model_catches_stale_reads() -> None:
    register = Register()
    assert register.read("k", "")  # never written
    register.wrote("k", "a")
    assert not register.read("k", "")  # stale
    assert register.read("k", "a")
    register.write_failed("k", "b")  # may or may not have taken effect
    assert register.allowed("k") == ["a", "b"]
    assert register.read("k", "b")
    assert not register.read("k", "a")  # once b was read, a is stale


def test_reverse_calls_back_to_clients() -> None:
    result = run_example("examples.reverse")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"server: listening on 127\.0\.0\.1:\d+", out)
    assert "server: 3 client peers connected, IDs [4294967296, 4294967297, 4294967298]" in out
    assert "server: quorum call Agent.Report got 2 of 3 replies:" in out
    answered = re.findall(
        r"client (alpha|bravo|charlie): the server asks 'what is your load\?'", out
    )
    assert len(answered) >= 2
    replies = re.findall(r"  client \d+: (alpha|bravo|charlie) load=(\d+)", out)
    assert len(replies) == 2
    total = re.search(r"total load of the quorum: (\d+)", out)
    assert total is not None and int(total.group(1)) == sum(int(load) for _, load in replies)


def test_tracing_prints_spans_of_one_trace() -> None:
    result = run_example("examples.tracing")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    spans = re.findall(r"span (\S+)\s+trace=(\w+) span=(\w+) parent=(\S+) ?(.*)", out)
    names = {name for name, *_ in spans}
    assert {"gorums.peer.register", "gorums.peer.unregister", "gorums.quorum_call"} <= names
    assert {"gorums.rpc", "client.write", "client.read"} <= names
    by_id = {span_id: (name, trace, parent, attrs) for name, trace, span_id, parent, attrs in spans}
    # client.write → gorums.rpc → its CLIENT span → replica 2's SERVER span → the
    # nested quorum calls of the WriteQuorum handler: one trace across replicas.
    (write,) = [s for s in spans if s[0] == "client.write"]
    nested = [s for s in spans if s[0] == "gorums.quorum_call" and s[1] == write[1]]
    methods = sorted(re.search(r"gorums.method=(\S+)", s[4]).group(1) for s in nested)  # type: ignore[union-attr]
    assert methods == ["storage.Storage.Read", "storage.Storage.Write"]
    for span in nested:
        server = by_id[span[3]]
        assert server[0] == "storage.Storage/WriteQuorum" and "gorums.node.id=2" in server[3]
        client = by_id[server[2]]
        assert client[0] == "storage.Storage/WriteQuorum" and "server.port=" in client[3]
        rpc = by_id[client[2]]
        assert rpc[0] == "gorums.rpc" and "WriteQuorum" in rpc[3] and rpc[2] == write[2]
    register = next(s for s in spans if s[0] == "gorums.peer.register")
    assert (
        "gorums.decision=registered" in register[4]
        and "gorums.peer.real_address=ipv4:" in register[4]
    )
    assert "read 'hello'" in out


def test_tracing_otlp_flag_names_the_missing_extra() -> None:
    # As if the otlp extra were not installed: its module cannot be imported.
    without_extra = (
        "import runpy, sys;"
        " sys.modules['opentelemetry.exporter.otlp.proto.grpc.trace_exporter'] = None;"
        " sys.argv = ['tracing', '--otlp', 'http://127.0.0.1:4317'];"
        " runpy.run_module('examples.tracing', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", without_extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 2
    assert "pip install 'gorums-mw[otlp]'" in result.stderr


def test_reshape_picks_the_fastest_quorum_and_shards_a_batch() -> None:
    result = run_example("examples.reshape")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    fastest = re.search(r"fastest majority: \[([\d, ]+)\]", out)
    assert fastest is not None
    chosen = {int(x) for x in fastest.group(1).split(",")}
    assert len(chosen) == 3 and not chosen & {4, 5}  # the slow replicas are left out
    asked = re.findall(r"replica (\d) answered \[([^\]]*)\]", out)
    assert asked and all(keys for _, keys in asked)  # every node was asked only for its keys
    assert "12 of 12 keys found" in out
    assert "replica 2 failed: calling [1, 3, 4, 5] instead" in out
    assert "replica 2 is back: [1, 2, 3, 4, 5] answered" in out


def test_tracing_writes_a_waterfall_page(tmp_path: Path) -> None:
    page = tmp_path / "out.html"
    result = run_example("examples.tracing", "--html", str(page))
    assert result.returncode == 0, result.stdout + result.stderr
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<script" not in text  # self-contained
    for name in ("gorums.peer.register", "gorums.quorum_call", "storage.Storage/Read"):
        assert name in text, name
    # A tiebreak on both sides of a pair, and a quorum call fanning out (CLIENT then SERVER).
    assert re.search(r"gorums\.peer\.tiebreak \[node \d\] kept_outbound", text)
    assert re.search(r"gorums\.peer\.tiebreak \[node \d\] kept_inbound", text)
    assert "(CLIENT)" in text and "(SERVER)" in text
