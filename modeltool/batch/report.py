"""The report of a batch: one row per (model, target) job, as a table, JSON, JUnit XML and HTML.

The HTML file is self-contained (inline style and script, no network): a table sortable by any
column, each row linking to its job's verification report (the ConvertReport as text and JSON) and
log under --out, by paths relative to the HTML file.
"""

from __future__ import annotations

import html
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from modeltool.batch.jobs import CHECK_FAILURES, PASSED, JobResult
from modeltool.batch.manifest import Skipped
from modeltool.sizes import format_size

JUNIT_SUITE = "modeltool batch"
HTML_GENERATOR = "modeltool batch"


@dataclass
class BatchReport:
    """Every job's result, in the order the models and targets were given."""

    results: list[JobResult]
    skipped: list[Skipped] = field(default_factory=list)
    executor: str = "local"
    out: str = ""
    seconds: float = 0.0
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {"jobs": len(self.results), "passed": 0, "failed": 0, "cached": 0}
        for r in self.results:
            counts["passed" if r.passed else "failed"] += 1
            counts["cached"] += r.cached
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def outcomes(self) -> list[dict[str, Any]]:
        """What any executor must agree on, job by job (no times, hosts or cache flags)."""
        return [r.outcome() for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "counts": self.counts(), "executor": self.executor, "out": self.out,
                "seconds": self.seconds, "versions": self.versions, "jobs": [r.to_dict() for r in self.results],
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped]}  # fmt: skip

    def render(self) -> str:
        """A table for people: one line per job, then the counts."""
        rows = [(r.model, r.target, r.status + (" (cached)" if r.cached else ""), f"{r.seconds:.1f} s",
                 format_size(r.peak_memory) if r.peak_memory else "-", r.reason) for r in self.results]  # fmt: skip
        head = ("model", "target", "status", "time", "peak memory", "reason / note")
        widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(5)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(head[:5], widths)) + "  " + head[5]]
        lines.append("-" * (sum(widths) + 10 + len(head[5])))
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(row[:5], widths)) + "  " + _clip(row[5], 160)
                  for row in rows]  # fmt: skip
        lines += [f"skipped: {s.path}: {s.reason}" for s in self.skipped]
        c = self.counts()
        kinds = ", ".join(f"{c[k]} {k}" for k in sorted(c) if k not in ("jobs", "passed", "failed", "cached"))
        lines.append(
            f"{c['jobs']} jobs: {c['passed']} passed, {c['failed']} failed ({kinds}); {c['cached']} from the cache; "
            f"{self.seconds:.1f} s with the {self.executor} executor; outputs in {self.out}"
        )
        return "\n".join(lines)

    def junit(self) -> str:
        """JUnit XML: one testsuite, one testcase per job (classname: the model, name: the target); a
        mismatch or an inconclusive verification is a <failure>, any other failed status an <error>."""
        c = self.counts()
        failures = sum(c.get(s, 0) for s in CHECK_FAILURES)
        errors = c["failed"] - failures
        suite = ET.Element("testsuite", name=JUNIT_SUITE, tests=str(c["jobs"]), failures=str(failures),
                           errors=str(errors), skipped="0", time=f"{self.seconds:.3f}")  # fmt: skip
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="executor", value=self.executor)
        ET.SubElement(props, "property", name="out", value=self.out)
        for r in self.results:
            case = ET.SubElement(suite, "testcase", classname=r.model, name=r.target, time=f"{r.seconds:.3f}")
            if r.status in CHECK_FAILURES:
                ET.SubElement(case, "failure", type=r.status, message=r.reason).text = r.reason
            elif not r.passed:
                ET.SubElement(case, "error", type=r.status, message=r.reason).text = r.reason
            notes = [f"status: {r.status}" + (" (cached)" if r.cached else "")]
            notes += [f"{k}: {os.path.join(self.out, v)}" for k, v in (("artifact", r.artifact), ("report", r.report),
                                                                        ("log", r.log)) if v]  # fmt: skip
            ET.SubElement(case, "system-out").text = "\n".join(notes)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

    def html(self, html_path: str) -> str:
        """The report as one self-contained HTML page to be written at `html_path` (links are relative to it)."""
        here = os.path.dirname(os.path.abspath(html_path))

        def link(rel: str | None, label: str) -> str:
            if not rel:
                return ""
            href = os.path.relpath(os.path.join(self.out, rel), here).replace(os.sep, "/")
            return f'<a href="{html.escape(href)}">{label}</a>'

        rows = []
        for r in self.results:
            status = r.status + (" (cached)" if r.cached else "")
            state = "passed" if r.status in PASSED else "failed"
            text_report = r.report and r.report[: -len(".json")] + ".txt"
            links = " ".join(x for x in (link(text_report, "report"), link(r.report, "json"), link(r.log, "log"),
                                         link(r.artifact, "artifact")) if x)  # fmt: skip
            model = link(text_report or r.log, html.escape(r.model)) or html.escape(r.model)
            reason = html.escape(r.reason)
            cells = [
                f"<td>{model}</td>", f"<td>{html.escape(r.target)}</td>",
                f'<td class="{"ok" if state == "passed" else "bad"}">{html.escape(status)}</td>',
                f'<td class="num" data-v="{r.seconds}">{r.seconds:.1f} s</td>',
                f'<td class="num" data-v="{r.peak_memory}">{format_size(r.peak_memory) if r.peak_memory else "-"}</td>',
                f'<td class="reason">{reason}</td>', f'<td class="links">{links}</td>',
            ]  # fmt: skip
            rows.append(f'<tr data-status="{state}" data-cached="{str(r.cached).lower()}">' + "".join(cells) + "</tr>")
        c = self.counts()
        summary = (f"{c['jobs']} jobs in {self.seconds:.1f} s with the {html.escape(self.executor)} executor; "
                   f"{c['cached']} from the cache")  # fmt: skip
        filters = "".join(
            f'<button data-filter="{key}"{" class=on" if key == "all" else ""}>{label} <b>{n}</b></button>'
            for key, label, n in (("all", "all", c["jobs"]), ("passed", "passed", c["passed"]),
                                  ("failed", "failed", c["failed"]), ("cached", "cached", c["cached"]))
        )  # fmt: skip
        skipped = "".join(f"<li>{html.escape(s.path)}: {html.escape(s.reason)}</li>" for s in self.skipped)
        return _PAGE.format(generator=HTML_GENERATOR, summary=summary, filters=filters, rows="\n".join(rows),
                            skipped=f"<h2>Not run</h2><ul>{skipped}</ul>" if skipped else "",
                            versions=html.escape(json.dumps(self.versions)))  # fmt: skip


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{generator}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modeltool batch</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 .3em; }} h2 {{ font-size: 16px; margin-top: 1.5em; }}
.filters button {{ font: inherit; border: 1px solid #bbb; background: #fafafa; border-radius: 4px;
  padding: 3px 10px; margin: 0 4px 8px 0; cursor: pointer; }}
.filters button.on {{ background: #234; color: #fff; border-color: #234; }}
.filters button[data-filter=failed] b {{ color: #c00; }} .filters button.on b {{ color: inherit; }}
table {{ border-collapse: collapse; width: 100%; table-layout: auto; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top;
  line-height: 1.35; }}
th {{ background: #f3f3f3; cursor: pointer; user-select: none; white-space: nowrap; position: sticky; top: 0; }}
th.asc::after {{ content: " \\25B2"; }} th.desc::after {{ content: " \\25BC"; }}
td {{ white-space: nowrap; }}
td.reason {{ white-space: normal; overflow-wrap: anywhere; width: 60%; max-width: 60ch; color: #444; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.links a {{ margin-right: .5em; }}
td.ok {{ color: #060; }} td.bad {{ color: #a00; font-weight: bold; }}
tr:hover td {{ background: #f7f9fc; }}
.versions {{ color: #777; font-size: 12px; overflow-wrap: anywhere; }}
</style></head>
<body>
<h1>modeltool batch</h1>
<p>{summary}</p>
<div class="filters">{filters}</div>
<table id="jobs"><thead><tr><th>model</th><th>target</th><th>status</th><th>time</th><th>peak memory</th>
<th>reason / note</th><th>links</th></tr></thead>
<tbody>
{rows}
</tbody></table>
{skipped}
<p class="versions">{versions}</p>
<script>
document.querySelectorAll(".filters button").forEach(function (button) {{
  button.addEventListener("click", function () {{
    var want = button.getAttribute("data-filter");
    document.querySelectorAll(".filters button").forEach(function (b) {{ b.classList.toggle("on", b === button); }});
    document.querySelectorAll("#jobs tbody tr").forEach(function (row) {{
      var show = want === "all" || row.getAttribute("data-status") === want ||
        (want === "cached" && row.getAttribute("data-cached") === "true");
      row.style.display = show ? "" : "none";
    }});
  }});
}});
document.querySelectorAll("#jobs th").forEach(function (th, col) {{
  th.addEventListener("click", function () {{
    var body = document.querySelector("#jobs tbody");
    var asc = !th.classList.contains("asc");
    document.querySelectorAll("#jobs th").forEach(function (h) {{ h.classList.remove("asc", "desc"); }});
    th.classList.add(asc ? "asc" : "desc");
    var key = function (row) {{
      var cell = row.children[col];
      var v = cell.getAttribute("data-v");
      return v !== null ? parseFloat(v) : cell.textContent.toLowerCase();
    }};
    Array.from(body.rows).sort(function (a, b) {{
      var x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    }}).forEach(function (row) {{ body.appendChild(row); }});
  }});
}});
</script>
</body></html>
"""
