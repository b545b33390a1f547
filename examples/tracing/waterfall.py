"""A self-contained HTML waterfall of finished spans: one block per trace, one bar per span.

No backend and no script: bars are positioned with CSS, each indented under
its parent, coloured by kind (CLIENT, SERVER, INTERNAL), labelled with the
node that recorded it, and titled with every attribute (hover to read them).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

_COLOURS = {SpanKind.CLIENT: "#4c78a8", SpanKind.SERVER: "#54a24b", SpanKind.INTERNAL: "#9d755d"}

_STYLE = """
body { font: 13px system-ui, sans-serif; margin: 2em; color: #222; }
h2 { font-size: 14px; margin: 1.5em 0 .3em; }
.row { position: relative; height: 20px; border-bottom: 1px solid #f0f0f0; }
.label { position: absolute; left: 0; width: 34em; overflow: hidden; white-space: nowrap; }
.lane { position: absolute; left: 35em; right: 0; top: 3px; height: 14px; }
.bar { position: absolute; height: 14px; min-width: 2px; border-radius: 2px; }
.legend span { display: inline-block; width: 1em; height: 1em; margin: 0 .3em 0 1em; }
"""


def render(spans: Sequence[ReadableSpan], title: str) -> str:
    """The HTML page of ``spans``, traces in the order they started."""
    traces: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        if span.context is not None and span.start_time is not None:
            traces[span.context.trace_id].append(span)
    ordered = sorted(traces.values(), key=lambda group: min(s.start_time or 0 for s in group))
    blocks = [_trace(group) for group in ordered]
    legend = "".join(
        f'<span style="background:{colour}"></span>{kind.name}' for kind, colour in _COLOURS.items()
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='legend'>{legend}</p>{''.join(blocks)}</body></html>"
    )


def _trace(group: list[ReadableSpan]) -> str:
    start = min(s.start_time or 0 for s in group)
    end = max(s.end_time or s.start_time or 0 for s in group)
    width = max(end - start, 1)
    ids = {s.context.span_id for s in group if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in group:
        parent = span.parent.span_id if span.parent is not None else None
        children[parent if parent in ids else None].append(span)
    rows: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            rows.append(_row(span, depth, start, width))
            if span.context is not None:
                walk(span.context.span_id, depth + 1)

    walk(None, 0)
    roots = children.get(None, [])
    name = roots[0].name if roots else "trace"
    duration = (end - start) / 1e6
    trace_id = f"{group[0].context.trace_id:032x}"[:8] if group[0].context else "?"
    header = f"{html.escape(name)} · {len(group)} spans · {duration:.2f} ms · trace {trace_id}"
    return f"<h2>{header}</h2>{''.join(rows)}"


def _row(span: ReadableSpan, depth: int, start: int, width: int) -> str:
    attributes = dict(span.attributes or {})
    node = attributes.get("gorums.node.id")
    decision = attributes.get("gorums.decision")
    label = span.name + (f" [node {node}]" if node is not None else "")
    if decision is not None:
        label += f" {decision}"
    left = ((span.start_time or start) - start) / width * 100
    length = max(((span.end_time or span.start_time or start) - (span.start_time or start)), 0)
    tip = "\n".join(
        [f"{span.name} ({span.kind.name})", f"{length / 1e6:.3f} ms"]
        + [f"{key}={value}" for key, value in sorted(attributes.items())]
    )
    colour = _COLOURS.get(span.kind, "#888")
    return (
        f"<div class='row' title='{html.escape(tip, quote=True)}'>"
        f"<div class='label' style='padding-left:{depth * 1.2}em'>{html.escape(label)}</div>"
        f"<div class='lane'><div class='bar' style='left:{left:.2f}%;"
        f"width:{length / width * 100:.2f}%;background:{colour}'></div></div></div>"
    )
