"""The distribution as users get it: its import names, its files and its metadata.

The sdist and wheel are built once for the module, as ``python -m build`` does
(the wheel is built from the unpacked sdist, so a wheel that holds everything
also shows that the sdist holds what a rebuild needs). The build runs without
isolation, with the setuptools of the project's venv (the ``test`` extra
requires it), so it needs no network and takes a few seconds.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import gorums_mw

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).with_name("smoke.py")
DIST_INFO = f"gorums_mw-{gorums_mw.__version__}.dist-info"
UNTRACKED = (".git", ".venv", "*.egg-info", "__pycache__", "*_cache", ".hypothesis", "build")
"""What a build's copy of the tree leaves out (.gitignore's entries and git's own)."""


def run(
    args: Sequence[str | Path], cwd: Path, timeout: float = 50
) -> subprocess.CompletedProcess[str]:
    """Run a command without PYTHON* variables; a failure shows its output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["GRPC_VERBOSITY"] = "ERROR"
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    command = " ".join(map(str, args))
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}{result.stderr}"
    return result


def source_modules() -> set[str]:
    """Every module file of the source tree, as wheel paths (interceptors/ is
    installed as gorums_mw/interceptors/)."""
    found = set()
    folders = (("gorums_mw", "gorums_mw"), ("interceptors", "gorums_mw/interceptors"))
    for folder, installed in folders:
        for directory, _, files in os.walk(ROOT / folder):
            relative = Path(installed) / Path(directory).relative_to(ROOT / folder)
            found |= {(relative / n).as_posix() for n in files if n.endswith((".py", ".pyi"))}
    return found


# -- an import name of our own ------------------------------------------------------------------

APP_IMPORTS = {
    "gorums_mw first": "import gorums_mw\nimport gorums_mw.interceptors\nimport interceptors\n",
    "own module first": "import interceptors\nimport gorums_mw\nimport gorums_mw.interceptors\n",
}


@pytest.mark.parametrize("imports", APP_IMPORTS.values(), ids=APP_IMPORTS.keys())
def test_an_app_keeps_its_own_interceptors_module(tmp_path: Path, imports: str) -> None:
    (tmp_path / "interceptors.py").write_text('"""The app\'s own module."""\n\nOWNER = "app"\n')
    (tmp_path / "app.py").write_text(
        imports
        + textwrap.dedent(
            """
            import os

            assert interceptors.OWNER == "app"
            assert os.path.dirname(os.path.abspath(interceptors.__file__)) == os.getcwd()
            assert not hasattr(gorums_mw.interceptors, "OWNER")
            assert gorums_mw.interceptors.PeerIdentityInterceptor
            print("ok")
            """
        )
    )
    assert run([sys.executable, "app.py"], cwd=tmp_path).stdout.strip() == "ok"


def test_the_project_installs_no_top_level_interceptors(tmp_path: Path) -> None:
    check = textwrap.dedent(
        """
        import gorums_mw.interceptors
        try:
            import interceptors
        except ModuleNotFoundError:
            print("ok")
        else:
            print("importable:", interceptors.__file__)
        """
    )
    assert run([sys.executable, "-c", check], cwd=tmp_path).stdout.strip() == "ok"


# -- the built distribution ---------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path
    build_output: str


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    # A copy of the tree: setuptools writes egg-info beside the sources, which
    # another build of the same checkout (a second test run) would race.
    source = tmp_path_factory.mktemp("source") / "gorums-mw"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*UNTRACKED))
    out = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source], cwd=out)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel, sdist, built.stdout + built.stderr)


def test_the_build_gives_no_setuptools_warning(dist: Dist) -> None:
    warnings = [
        line
        for line in dist.build_output.splitlines()
        if "Warning" in line or "deprecated" in line.lower()
    ]
    assert warnings == []


def test_twine_check_strict_passes(dist: Dist, tmp_path: Path) -> None:
    run([sys.executable, "-m", "twine", "check", "--strict", dist.wheel, dist.sdist], cwd=tmp_path)


def test_the_wheel_holds_gorums_mw_and_nothing_else(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        top_level = wheel.read(f"{DIST_INFO}/top_level.txt").decode().split()
    assert top_level == ["gorums_mw"]
    assert {name.split("/")[0] for name in names} == {"gorums_mw", DIST_INFO}
    assert {"gorums_mw/py.typed", "gorums_mw/interceptors/py.typed"} <= names
    modules = {name for name in names if name.endswith((".py", ".pyi"))}
    assert modules == source_modules()


def test_the_wheel_metadata(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        metadata = email.message_from_bytes(wheel.read(f"{DIST_INFO}/METADATA"))
        assert f"{DIST_INFO}/licenses/LICENSE" in wheel.namelist()
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License"] is None  # the SPDX expression replaces the free-text field
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers: list[str] = metadata.get_all("Classifier", [])
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639 forbids both
    assert metadata.get_all("Project-URL")


def test_the_sdist_holds_what_a_rebuild_needs(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        root, *rest = sdist.getnames()
        names = {name.removeprefix(root + "/") for name in rest}
    needed = {
        "pyproject.toml",
        "MANIFEST.in",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "gorums_mw/py.typed",
        "interceptors/__init__.py",
        "interceptors/py.typed",
        "protos/gorums_mw/_proto/stream.proto",
        "scripts/gen-protos",
        "tests/packaging/test_packaging.py",
        "mkdocs.yml",
        "docs/index.md",
        "docs/img/quorum.svg",
    }
    assert needed <= names
    assert not [name for name in names if name.endswith(".pyc") or "__pycache__" in name]
    assert not [name for name in names if name.startswith("gorums_mw/interceptors")]


def test_the_wheel_works_in_a_fresh_venv(dist: Dist, tmp_path: Path) -> None:
    fresh = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", fresh], cwd=tmp_path)
    python = fresh / "bin" / "python"
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", python]
    run([*pip, "install", "--no-deps", "--no-index", dist.wheel], cwd=tmp_path)
    # The dependencies come from the project's venv, through a .pth line: a plain
    # path, so the .pth files there (the editable install of the project) stay unread.
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = Path(run([python, "-c", where], cwd=tmp_path).stdout.strip())
    (purelib / "_project_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")

    smoke = run([python, SMOKE], cwd=tmp_path).stdout
    assert "the handler saw peer 2" in smoke
    assert Path(smoke.split()[-1]).is_relative_to(fresh), smoke  # not the editable install
    find = "import importlib.util as u; print(u.find_spec('interceptors'))"
    assert run([python, "-c", find], cwd=tmp_path).stdout.strip() == "None"
