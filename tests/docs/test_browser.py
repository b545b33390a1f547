"""The built site in a real browser: no console error, no missing asset, nothing from outside."""

from __future__ import annotations

import pytest

pytest.importorskip("websocket", reason="needs websocket-client (the docs extra)")

from tests.docs.browser import find_chromium, open_page

PAGES = ["", "tutorial/", "reference/calls/", "benchmarks/"]


def test_pages_load_cleanly_in_chromium(served_site: str) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium); .ci/run installs it")
    problems: dict[str, list[str]] = {}
    with open_page(chromium) as page:
        for path in PAGES:
            found = page.problems(served_site + path, served_site)
            if found:
                problems[path or "/"] = found
    assert not problems
