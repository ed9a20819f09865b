"""The batch report's forms (table, JUnit, outcomes) and the live progress line, on made-up results."""

from __future__ import annotations

import io
from xml.etree import ElementTree as ET

from modeltool.batch.jobs import JobResult
from modeltool.batch.progress import ProgressLine
from modeltool.batch.report import BatchReport


def _results() -> list[JobResult]:
    verification = {"outputs": [{"name": "b", "passed": True, "verdict": "close"},
                                {"name": "a", "passed": True, "verdict": "close"}], "max_abs": 1e-7}  # fmt: skip
    return [
        JobResult("m -> onnx", "m", "onnx", "verified", seconds=4.0, peak_memory=700 << 20, artifact="m/m.onnx",
                  report="m/m.onnx.report.json", details={"verification": verification}),
        JobResult("m -> tflite", "m", "tflite", "mismatch", "verification failed: y: max abs 0.3", 5.0),
        JobResult("h -> onnx", "h", "onnx", "timeout", "timeout: killed after 15 s (limit 15 s)", 15.0, cached=False),
    ]  # fmt: skip


def test_table_junit_and_counts() -> None:
    report = BatchReport(_results(), executor="local", out="/o", seconds=20.0)
    text = report.render()
    assert "m      onnx    verified" in text and "timeout: killed after 15 s" in text
    assert text.splitlines()[-1].startswith("3 jobs: 1 passed, 2 failed (1 mismatch, 1 timeout, 1 verified)")
    suite = ET.fromstring(report.junit().split("?>", 1)[1])
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {c.get("classname") + ":" + c.get("name"): c for c in suite.findall("testcase")}
    assert cases["m:tflite"].find("failure").get("type") == "mismatch"
    assert cases["h:onnx"].find("error").get("message").startswith("timeout: killed")
    assert "artifact: /o/m/m.onnx" in cases["m:onnx"].find("system-out").text


def test_outcomes_ignore_times_hosts_and_output_order() -> None:
    first = _results()
    second = _results()
    second[0].details["verification"]["outputs"].reverse()
    second[0].seconds, second[0].node, second[0].cached = 9.0, "other-node", True
    assert BatchReport(first).outcomes() == BatchReport(second).outcomes()
    second[1].status = "verified"
    assert BatchReport(first).outcomes() != BatchReport(second).outcomes()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal_only() -> None:
    screen = _Terminal()
    line = ProgressLine(screen, min_interval=0)
    line.start(total=4, cached=1)
    for result in _results()[:2]:
        line.job_started(None)  # type: ignore[arg-type]
        line.job_finished(result)
    assert line.text().startswith("[batch] 3/4 done (1 cached), 1 failed, 1 remaining, elapsed 0:00, ETA 0:00")
    line.close()
    assert screen.getvalue().startswith("\r[batch] 1/4 done (1 cached), 0 failed, 3 remaining")
    assert screen.getvalue().endswith("\r")
    piped = io.StringIO()
    ProgressLine(piped).start(total=4, cached=0)
    assert piped.getvalue() == ""
