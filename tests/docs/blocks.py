"""Fenced code blocks of the documentation, and what the tests do with each.

Every ``python`` block under ``docs/`` is checked one way, chosen by an HTML
comment on the line just before its fence (invisible on the site):

- no comment: a *fragment*, type-checked with mypy against the package.
  It runs inside an ``async def`` (so ``await`` and ``async for`` work),
  where the names in ``AMBIENT`` are parameters of their documented types:
  a page may say "with ``system`` a ``System``" and use it.
- ``<!-- check: run -->``: a self-contained program, run with the project's
  Python from the repository root; it must exit 0.
- ``<!-- check: partial: REASON -->``: deliberately incomplete (a sketch of a
  shape, a diff); not checked, and the reason is required.

A ``text`` block marked ``<!-- check: output -->`` is what the ``run`` block
before it on the same page prints: the test compares the two.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(
    r"^\s*<!--\s*check:\s*(?P<kind>run|partial|output)(?::\s*(?P<reason>.*?))?\s*-->\s*$"
)

AMBIENT: dict[str, str] = {
    "system": "gorums_mw.System",
    "config": "gorums_mw.Configuration",
    "manager": "gorums_mw.InboundManager",
    "dialer": "gorums_mw.OutboundManager",
    "nodes": "gorums_mw.InboundNodeOption",
    "registry": "gorums_mw.HandlerRegistry",
    "server": "grpc.aio.Server",
}
"""Names a fragment may use without defining them, and their types."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, how it is checked, its code."""

    path: Path
    line: int
    lang: str
    kind: str
    """``fragment``, ``run``, ``partial`` or ``output``."""
    reason: str
    code: str

    @property
    def where(self) -> str:
        """``docs/page.md:LINE``, for test IDs and messages."""
        return f"{self.path.as_posix()}:{self.line}"


def blocks(path: Path, root: Path) -> list[Block]:
    """Every fenced block of the Markdown file ``path`` (named relative to ``root``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not (
            lines[end].startswith(indent) and lines[end].strip().startswith(fence)
        ):
            body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else lines[end])
            end += 1
        kind, reason = "fragment", ""
        previous = index - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous >= 0 and (marker := MARKER.match(lines[previous])):
            kind, reason = marker["kind"], marker["reason"] or ""
        found.append(
            Block(
                path.relative_to(root),
                index + 1,
                opening["lang"].lower(),
                kind,
                reason,
                textwrap.dedent("\n".join(body)) + "\n",
            )
        )
        index = end + 1
    return found


HEADER_LINES = 6
"""Lines of ``fragment_module`` before the fragment's first line."""


def fragment_module(block: Block) -> str:
    """The source mypy checks for a fragment: its code inside a typed ``async def``."""
    params = ", ".join(f"{name}: {kind}" for name, kind in AMBIENT.items())
    body = textwrap.indent(block.code, "    ") if block.code.strip() else "    pass\n"
    return (
        f"# {block.where}\n"
        "import grpc\n"
        "import gorums_mw\n\n\n"
        f"async def _fragment({params}) -> None:  # noqa\n"
        f"{body}"
    )
