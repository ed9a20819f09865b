"""A report payload as one self-contained HTML page: the payload as JSON data, the vendored dagre
layout library with its license, and the page's own script and styles, all inlined.

One file and no network because a report is mailed, attached to a CI run or opened on an air-gapped
machine: it names no other file, no CDN, no font. The page reads only the payload
(`modeltool.report.payload`), so every command's report is drawn by the same code.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from modeltool.atomic import atomic_path
from modeltool.report.payload import check_payload

HERE = Path(__file__).resolve().parent
#: comments of the minified build that point at files not shipped (its source map, its LEGAL.txt)
BUILD_COMMENTS = re.compile(r"^//# sourceMappingURL=.*$|/\*! For license information please see [^*]*\*/", re.M)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="modeltool">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header>
  <div class="top">
    <h1 id="title"></h1><span class="kind">{kind}</span>
    <div class="search-box">
      <input id="search" type="search" placeholder="Search by name (press /)" autocomplete="off" spellcheck="false">
      <ul id="results"></ul>
    </div>
    <div class="tools">
      <button id="zoom-out" title="Zoom out">&minus;</button><span id="zoom">100%</span>
      <button id="zoom-in" title="Zoom in">+</button>
      <button id="fit" title="Fit the graph in the window (f)">Fit</button>
      <button id="collapse-all">Collapse all</button>
      <button id="expand-all" title="Open every group (only for graphs of at most 1,500 nodes)">Expand all</button>
    </div>
  </div>
  <details open><summary>Summary</summary><ul id="summary"></ul></details>
  <nav id="tabs"></nav>
</header>
<main>
  <svg id="canvas" role="img" aria-label="model graph">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8"
      markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z"></path></marker></defs>
    <g id="viewport"></g>
  </svg>
  <aside id="panel"></aside>
  <div id="legend"></div>
  <div id="counts"></div>
</main>
<script type="application/json" id="payload">{payload}</script>
<script>
/*! {license} */
{dagre}
</script>
<script>
{script}
</script>
</body>
</html>
"""


def render(payload: Mapping[str, Any]) -> str:
    """The page for `payload` (checked against the contract first: a broken payload fails here,
    with the place named, rather than as a blank page in someone's browser)."""
    check_payload(payload)
    data = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False, default=_plain)
    data = data.replace("<", "\\u003c")  # no `</script>` or `<!--` can end the data block early
    dagre, license_text, script, css = _assets()
    return PAGE.format(title=html.escape(str(payload["title"])), kind=html.escape(str(payload["kind"])), css=css,
                       payload=data, license=license_text, dagre=dagre, script=script)  # fmt: skip


def write_report(payload: Mapping[str, Any], path: str, force: bool = False) -> None:
    """Write the page to `path` whole or not at all (a temporary sibling renamed); an existing file
    is replaced only with `force`."""
    page = render(payload)
    with atomic_path(path, force=force) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)


@cache
def _assets() -> tuple[str, str, str, str]:
    """The vendored dagre build (license comment in front, pointers to unshipped files out), the
    page's script and its styles, read from the package once."""
    dagre = BUILD_COMMENTS.sub("", (HERE / "vendor" / "dagre.min.js").read_text(encoding="utf-8")).strip()
    license_text = (HERE / "vendor" / "LICENSE").read_text(encoding="utf-8").replace("*/", "* /").strip()
    license_text = "@dagrejs/dagre 3.1.3 and @dagrejs/graphlib 4.0.6, MIT License.\n" + license_text
    script = (HERE / "static" / "report.js").read_text(encoding="utf-8")
    css = (HERE / "static" / "report.css").read_text(encoding="utf-8")
    for name, text in (("dagre.min.js", dagre), ("report.js", script)):
        if "</script" in text.lower():
            raise ValueError(f"{name} holds '</script' and cannot be inlined")
    return dagre, license_text, script, css


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: they travel as text ("nan", "inf"), as in `--json`."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (from a caller's metrics) as plain JSON values."""
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)
