"""Presenters: text, JSON and HTML views of one :class:`Difference` tree.

They only read the tree. Text folds container labels into each line
(``layer 1: usr/bin/cosign: content differs (...)``) so one line answers
"what differs and where"; details (fields, notes, diffs) follow indented.
"""

from __future__ import annotations

import html
from typing import Any, Final

from reprobuild.diff.model import Difference

__all__ = ["JSON_SCHEMA_VERSION", "render_html", "render_json", "render_text"]

JSON_SCHEMA_VERSION: Final = 1
_INDENT: Final = "    "


def _text(node: Difference, prefix: list[str], depth: int, out: list[str]) -> None:
    pad = _INDENT * depth
    label = [*prefix, node.source] if node.source else prefix
    where = ": ".join(label)
    if node.is_container:
        for comment in node.comments:
            out.append(f"{pad}{where}: note: {comment}")
        for child in node.children:
            _text(child, label, depth, out)
        return
    mark = "[diffoscope] " if node.origin == "diffoscope" else ""
    out.append(f"{pad}{mark}{where}: {node.summary}" if where else f"{pad}{mark}{node.summary}")
    for comment in node.comments:
        out.append(f"{pad}{_INDENT}note: {comment}")
    if node.unified_diff:
        out.extend(f"{pad}{_INDENT}{line}".rstrip() for line in node.unified_diff.splitlines())
    for child in node.children:
        _text(child, [], depth + 1, out)


def render_text(diff: Difference | None) -> str:
    """Lines for a terminal; empty when the inputs are identical."""
    if diff is None:
        return ""
    out: list[str] = []
    if diff.is_container:  # the root's own label is the pair of inputs: not repeated
        out.extend(f"note: {c}" for c in diff.comments)
        for child in diff.children:
            _text(child, [], 0, out)
    else:
        _text(diff, [], 0, out)
    return "\n".join(out) + "\n"


def _node(diff: Difference) -> dict[str, Any]:
    return {
        "source": diff.source,
        "kind": diff.kind,
        "summary": diff.summary,
        "unified_diff": diff.unified_diff,
        "comments": list(diff.comments),
        "origin": diff.origin,
        "children": [_node(c) for c in diff.children],
    }


def render_json(diff: Difference | None) -> dict[str, Any]:
    """A JSON-ready dict with a fixed set of keys on every node (dump with sort_keys)."""
    return {
        "schema": "reprobuild-diff",
        "version": JSON_SCHEMA_VERSION,
        "identical": diff is None,
        "difference": None if diff is None else _node(diff),
    }


_CSS: Final = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.2em; }
details { margin-left: 1.2em; border-left: 1px solid #ddd; padding-left: .6em; }
summary { cursor: pointer; padding: .1em 0; }
.src { font-family: monospace; font-weight: bold; }
.kind { font-size: .8em; color: #666; border: 1px solid #ccc; border-radius: 3px; padding: 0 .3em; }
.origin-diffoscope > summary .kind { background: #eef; }
.comment { color: #8a5a00; font-style: italic; margin: .2em 0; }
pre { background: #f7f7f7; padding: .5em; overflow-x: auto; margin: .3em 0; }
.add { color: #065f00; background: #e6ffe6; }
.del { color: #8b0000; background: #ffe6e6; }
.hunk { color: #555; }
"""


def _html_diff(text: str) -> str:
    lines = []
    for line in text.splitlines():
        css = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")
        esc = html.escape(line)
        lines.append(f'<span class="{css}">{esc}</span>' if css else esc)
    return "<pre>" + "\n".join(lines) + "</pre>"


def _html(node: Difference, out: list[str]) -> None:
    out.append(f'<details open class="origin-{node.origin}">')
    out.append(
        f'<summary><span class="src">{html.escape(node.source)}</span> '
        f'<span class="kind">{html.escape(node.kind)}</span> {html.escape(node.summary)}</summary>'
    )
    for comment in node.comments:
        out.append(f'<div class="comment">{html.escape(comment)}</div>')
    if node.unified_diff:
        out.append(_html_diff(node.unified_diff))
    for child in node.children:
        _html(child, out)
    out.append("</details>")


def render_html(diff: Difference | None) -> str:
    """One self-contained page (inline CSS, no scripts, no external resources)."""
    title = "identical" if diff is None else diff.source
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>reprobuild diff: {html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>reprobuild diff: {html.escape(title)}</h1>",
    ]
    if diff is None:
        out.append("<p>The inputs are identical.</p>")
    else:
        _html(diff, out)
    out.append("</body></html>")
    return "\n".join(out) + "\n"
