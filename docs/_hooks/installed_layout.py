"""MkDocs hook: show mkdocstrings the package as it is installed.

The repository keeps ``gorums_mw.interceptors`` in its own folder,
``interceptors/``, which only the packaging puts inside ``gorums_mw``. So
that the reference can name every public module by its import path, this
hook keeps a view of the installed layout in ``build/docs/gorums_mw``:
links to each entry of ``gorums_mw/``, and ``interceptors`` linked to
``interceptors/``. ``mkdocs.yml`` points mkdocstrings at ``build/docs``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]
VIEW = ROOT / "build" / "docs" / "gorums_mw"


@event_priority(100)  # before mkdocstrings takes its search paths
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Bring the view up to date before anything is read from it."""
    wanted = {entry.name: entry for entry in (ROOT / "gorums_mw").iterdir()}
    wanted.pop("__pycache__", None)
    wanted["interceptors"] = ROOT / "interceptors"
    VIEW.mkdir(parents=True, exist_ok=True)
    for link in VIEW.iterdir():
        target = wanted.get(link.name)
        if target is None or not link.is_symlink() or link.resolve() != target.resolve():
            link.unlink(missing_ok=True)
    for name, target in wanted.items():
        link = VIEW / name
        if not link.is_symlink():
            # Another build (two test runs at once) may make the same link first.
            with contextlib.suppress(FileExistsError):
                link.symlink_to(os.path.relpath(target, VIEW))
    return config
