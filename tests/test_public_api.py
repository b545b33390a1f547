"""The public API: __all__ matches the module, and every public name is documented."""

from __future__ import annotations

import inspect

import pytest

import gorums_mw
from gorums_mw import interceptors


@pytest.mark.parametrize("module", [gorums_mw, interceptors])
def test_all_matches_module(module: object) -> None:
    exported = [name for name in dir(module) if not name.startswith("_")]
    public = {name for name in exported if not inspect.ismodule(getattr(module, name))}
    assert set(module.__all__) - {"__version__"} == public  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", [gorums_mw, interceptors])
def test_every_public_name_has_a_docstring(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
            if inspect.isclass(value):
                for attr, member in vars(value).items():
                    if not attr.startswith("_") and inspect.isfunction(member):
                        assert inspect.getdoc(member), f"{name}.{attr}"
