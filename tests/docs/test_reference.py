"""The reference documents every public name, from the public modules only."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import gorums_mw
from gorums_mw import interceptors

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
DIRECTIVE = re.compile(r"^::: (\S+)", re.M)


def qualified(module: object, prefix: str, name: str) -> set[str]:
    """The identifiers under which ``name`` of ``module`` may be documented.

    A name ``gorums_mw.interceptors`` re-exports from ``gorums_mw`` (the same
    object, such as ``Peer``) is documented once, under ``gorums_mw``.
    """
    value = getattr(module, name)
    names = {f"{prefix}.{name}"}
    if getattr(gorums_mw, name, None) is value:
        names.add(f"gorums_mw.{name}")
    return names


def documented() -> set[str]:
    """Every identifier a ``:::`` directive of the reference names."""
    return {
        name
        for page in REFERENCE.glob("*.md")
        for name in DIRECTIVE.findall(page.read_text(encoding="utf-8"))
    }


@pytest.mark.parametrize(
    ("module", "prefix"), [(gorums_mw, "gorums_mw"), (interceptors, "gorums_mw.interceptors")]
)
def test_every_public_name_has_a_reference_entry(module: object, prefix: str) -> None:
    names = set(module.__all__) - {"__version__"}  # type: ignore[attr-defined]
    missing = {name for name in names if not qualified(module, prefix, name) & documented()}
    assert not missing


def test_the_reference_names_no_private_module() -> None:
    private = {name for name in documented() if any(p.startswith("_") for p in name.split("."))}
    assert not private


def test_every_public_name_is_in_the_built_reference(site: Path) -> None:
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "reference").rglob("*.html"))
    for module, prefix in ((gorums_mw, "gorums_mw"), (interceptors, "gorums_mw.interceptors")):
        for name in set(module.__all__) - {"__version__"}:
            ids = qualified(module, prefix, name)
            assert any(f'id="{found}"' in html for found in ids), ids


def public_methods(cls: type) -> set[str]:
    """The public methods and properties a gorums-mw class defines or inherits from one."""
    found = set()
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next((base for base in cls.__mro__ if name in vars(base)), None)
        member = vars(owner).get(name) if owner is not None else None
        if owner is None or not owner.__module__.startswith("gorums_mw"):
            continue
        if inspect.isfunction(member) or isinstance(member, property | classmethod | staticmethod):
            found.add(name)
    return found


def test_every_public_method_is_in_the_built_reference(site: Path) -> None:
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "reference").rglob("*.html"))
    missing = []
    for module, prefix in ((gorums_mw, "gorums_mw"), (interceptors, "gorums_mw.interceptors")):
        for name in sorted(set(module.__all__) - {"__version__"}):
            value = getattr(module, name)
            if not inspect.isclass(value):
                continue
            for method in sorted(public_methods(value)):
                ids = {f"{q}.{method}" for q in qualified(module, prefix, name)}
                if not any(f'id="{found}"' in html for found in ids):
                    missing.append(f"{prefix}.{name}.{method}")
    assert not missing
