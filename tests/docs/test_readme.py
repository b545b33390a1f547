"""The README: short, its quickstart near the top, and the quickstart runs exactly as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.blocks import Block, blocks

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def quickstart() -> list[Block]:
    """The fenced blocks of the README's Quickstart section."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Quickstart") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("## "))
    return [block for block in blocks(README, ROOT) if start < block.line <= end]


def one(found: list[Block], lang: str, contains: str = "") -> Block:
    matching = [block for block in found if block.lang == lang and contains in block.code]
    assert len(matching) == 1, f"expected one {lang} block with {contains!r} in the quickstart"
    return matching[0]


def test_the_readme_is_short_and_starts_with_the_quickstart() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300
    found = quickstart()
    assert lines.index("## Quickstart") < 40
    assert max(block.line + block.code.count("\n") for block in found) <= 120


def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="needs grpcio-tools (the codegen extra)")
    found = quickstart()
    text = README.read_text(encoding="utf-8")
    assert "`kv.proto`" in text and "`replicas.py`" in text
    (tmp_path / "kv.proto").write_text(one(found, "proto").code, encoding="utf-8")
    (tmp_path / "replicas.py").write_text(one(found, "python").code, encoding="utf-8")
    commands = one(found, "sh", "grpc_tools.protoc").code
    protoc = re.search(r"^python -m grpc_tools\.protoc.*?[^\\]$", commands, re.M | re.S)
    assert protoc is not None, commands
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("PYTHONPATH", None)
    generated = subprocess.run(
        ["bash", "-c", protoc.group(0)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert generated.returncode == 0, generated.stderr
    assert (tmp_path / "kv_gorums.py").exists()
    quiet = {key: value for key, value in env.items() if key != "GRPC_VERBOSITY"}  # grpc's default
    ran = subprocess.run(
        [sys.executable, "replicas.py"],
        cwd=tmp_path,
        env=quiet,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout == one(found, "text").code
    assert ran.stderr == ""  # no grpc log line (a clean shutdown says nothing)
