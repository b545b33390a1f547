"""Every Python block on the site is run or type-checked (``tests/docs/blocks.py`` says how)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.blocks import AMBIENT, HEADER_LINES, Block, blocks, fragment_module

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

ALL = [block for page in sorted(DOCS.rglob("*.md")) for block in blocks(page, ROOT)]
PYTHON = [block for block in ALL if block.lang == "python"]

# mypy-protobuf's servicer stubs make every method abstract, where grpc
# answers UNIMPLEMENTED for those a servicer leaves out: the pages implement
# only the methods they are about. build/typecheck (scripts/bootstrap makes
# it) shows mypy gorums_mw.interceptors where the packaging installs it.
MYPY_CONFIG = """\
[mypy]
python_version = 3.11
check_untyped_defs = True
disable_error_code = abstract
mypy_path = {root}/build/typecheck:{root}
cache_dir = {root}/.mypy_cache/docs

[mypy-google.rpc.*]
ignore_missing_imports = True
"""


def test_the_pages_have_python_blocks_of_every_kind() -> None:
    assert {block.kind for block in PYTHON} == {"fragment", "run", "partial"}


@pytest.mark.parametrize(
    "block", [b for b in PYTHON if b.kind == "partial"], ids=lambda block: block.where
)
def test_a_partial_block_says_why(block: Block) -> None:
    assert block.reason, f"{block.where}: <!-- check: partial: REASON --> needs a reason"


def test_markers_fit_their_blocks() -> None:
    wrong = [
        block.where
        for block in ALL
        if (block.kind == "output" and block.lang != "text")
        or (block.lang != "python" and block.kind in ("run", "partial"))
    ]
    assert not wrong


def expected_outputs() -> dict[Block, str]:
    """Each run block that a marked output block follows, with that output."""
    expected: dict[Block, str] = {}
    last_run: Block | None = None
    for block in ALL:
        if block.kind == "run":
            last_run = block
        elif block.kind == "output":
            assert last_run is not None and last_run.path == block.path, block.where
            expected[last_run] = block.code
    return expected


def test_fragments_type_check(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    fragments = [block for block in PYTHON if block.kind == "fragment"]
    files = []
    for number, block in enumerate(fragments):
        file = tmp_path / f"docs_fragment_{number}.py"
        file.write_text(fragment_module(block), encoding="utf-8")
        files.append(str(file))
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG.format(root=ROOT), encoding="utf-8")
    out, err, status = api.run(["--config-file", str(config), "--no-error-summary", *files])
    where = {f"docs_fragment_{n}.py": block for n, block in enumerate(fragments)}
    report = "\n".join(_located(line, where) for line in (out + err).splitlines())
    assert status == 0, f"fragments (ambient names: {', '.join(AMBIENT)}):\n{report}"


def _located(line: str, where: dict[str, Block]) -> str:
    """A mypy line about a generated file, told by the page line it came from."""
    file, _, rest = line.partition(":")
    number, _, message = rest.partition(":")
    block = where.get(Path(file).name)
    if block is None or not number.isdigit():
        return line
    return f"{block.path.as_posix()}:{block.line + int(number) - HEADER_LINES}:{message}"


def test_programs_run(tmp_path: Path) -> None:
    programs = [block for block in PYTHON if block.kind == "run"]
    expected = expected_outputs()
    env = {**os.environ, "GRPC_VERBOSITY": "ERROR", "PYTHONPATH": str(ROOT)}
    running = []
    for number, block in enumerate(programs):
        file = tmp_path / f"docs_program_{number}.py"
        file.write_text(block.code, encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, str(file)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        running.append((block, process))
    failed = []
    for block, process in running:
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            failed.append(f"{block.where}: still running after 60 s\n{out}{err}")
            continue
        if process.returncode != 0:
            failed.append(f"{block.where}: exit status {process.returncode}\n{out}{err}")
        elif block in expected and out != expected[block]:
            failed.append(f"{block.where}: printed\n{out}\nwhere the page says\n{expected[block]}")
    assert not failed, "\n".join(failed)
