"""`modeltool batch` with the local executor, on the tiny zoo: real conversions in real processes.

Results and their files, the JSON/JUnit/HTML reports, a rerun from the cache in seconds, `--force`,
a hanging job killed by `--timeout` and a memory hog killed by `--max-memory` while the rest
completes, and the exit codes 0, 1 and 2.
"""

from __future__ import annotations

import json
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from modeltool.batch import BatchSettings, JobResult, discover_models, run_batch
from modeltool.batch.progress import ProgressLine
from tests.batch.conftest import HERE, NOT_CONVERTIBLE, ZOO, ZooRun
from tests.conftest import FIXTURES, run_cli


def test_the_zoo_converts_and_the_unconvertible_model_fails_cleanly(zoo_run: ZooRun) -> None:
    assert zoo_run.result.returncode == 1, zoo_run.result.stderr
    assert zoo_run.result.stderr.strip().splitlines()[-1] == "modeltool: 1 of 9 jobs failed"
    report = json.loads(zoo_run.result.stdout)
    statuses = {j["job"]: j["status"] for j in report["jobs"]}
    assert len(statuses) == 9 and report["counts"]["passed"] == 8
    # the ONNX file is already an ONNX target: skipped with a note, not an error
    assert [(Path(s["path"]).name, s["reason"]) for s in report["skipped"]] == [
        (NOT_CONVERTIBLE, "already onnx: not converted to onnx")]
    for job in report["jobs"]:
        if job["model"] == NOT_CONVERTIBLE:
            assert job["status"] == "error" and "converting from ONNX model is not supported" in job["reason"]
            continue
        assert job["status"] == "verified", job
        assert job["details"]["verification"]["passed"] and job["peak_memory"] > 100 << 20
        artifact = zoo_run.out / job["artifact"]
        assert artifact.stat().st_size > 0 and artifact.suffix == "." + job["target"]
        written = json.loads((zoo_run.out / job["report"]).read_text())
        assert written["passed"] and written["written"] and written["output"] == str(artifact)
        assert (zoo_run.out / job["report"].replace(".json", ".txt")).read_text().startswith(
            str(ZOO[[p.name for p in ZOO].index(job["model"])]))  # fmt: skip
    assert json.loads((zoo_run.out / "batch-report.json").read_text())["counts"] == report["counts"]


def test_junit_has_one_testcase_per_job(zoo_run: ZooRun) -> None:
    suite = ET.parse(zoo_run.junit).getroot()
    assert suite.get("name") == "modeltool batch" and suite.get("tests") == "9" and suite.get("errors") == "1"
    cases = suite.findall("testcase")
    assert sorted((c.get("classname"), c.get("name")) for c in cases) == sorted(
        (p.name, t) for p in ZOO for t in ("onnx", "tflite") if (p.name, t) != (NOT_CONVERTIBLE, "onnx"))  # fmt: skip
    errors = [c for c in cases if c.find("error") is not None]
    assert {c.get("classname") for c in errors} == {NOT_CONVERTIBLE}
    assert "not supported" in errors[0].find("error").get("message")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows, self.links, self.external = 0, [], []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.rows += tag == "tr"
        if tag == "a":
            self.links.append(attrs["href"])
        if tag in ("script", "link", "img") and (attrs.get("src") or attrs.get("href")):
            self.external.append(attrs)


def test_html_is_self_contained_and_links_each_jobs_report(zoo_run: ZooRun) -> None:
    text = zoo_run.html.read_text()
    page = _Page()
    page.feed(text)
    assert page.rows == 10 and page.external == [] and "http" not in text  # header + 9 jobs, no network
    assert "addEventListener" in text  # sortable
    reports = {href for href in page.links if href.endswith(".report.txt")}
    assert len(reports) == 8  # each verified job's report, linked from its row (model name and "report")
    assert all((zoo_run.html.parent / href).is_file() for href in page.links)  # relative to the page


def test_a_second_identical_run_comes_from_the_cache_in_seconds(zoo_run: ZooRun) -> None:
    start = time.perf_counter()
    again = run_cli(*zoo_run.args)
    seconds = time.perf_counter() - start
    assert again.returncode == 1
    report = json.loads(again.stdout)
    assert report["counts"]["cached"] == 9 and seconds < 10, (seconds, zoo_run.seconds)
    first = json.loads(zoo_run.result.stdout)
    assert [j["status"] for j in report["jobs"]] == [j["status"] for j in first["jobs"]]


def test_force_runs_a_cached_job_again(zoo_run: ZooRun) -> None:
    entries, _ = discover_models([str(ZOO[0])], ("onnx",))
    artifact = zoo_run.out / "sequential_mlp.keras/sequential_mlp.onnx"
    before = artifact.stat().st_mtime_ns
    cached = run_batch(entries, BatchSettings(out=str(zoo_run.out)))
    assert cached.results[0].cached and artifact.stat().st_mtime_ns == before
    forced = run_batch(entries, BatchSettings(out=str(zoo_run.out), force=True))
    assert not forced.results[0].cached and forced.results[0].status == "verified"
    assert artifact.stat().st_mtime_ns > before


def test_exit_0_when_every_job_passes(zoo_run: ZooRun) -> None:
    result = run_cli("batch", ZOO[1], "--to", "tflite", "--out", zoo_run.out, "-q")  # from the cache
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_exit_2_when_nothing_can_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/notes.txt").write_text("no models here")
    for args in (["batch", tmp_path / "empty", "--to", "onnx"], ["batch", "--manifest", tmp_path / "none.yaml"],
                 ["batch", FIXTURES / "keras3/conv_bn.keras"], ["batch", FIXTURES / "keras3/conv_bn.keras", "--to",
                                                                "png"]):  # fmt: skip
        result = run_cli(*args, "--out", tmp_path / "out")
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("modeltool: error:")


def test_a_hanging_job_and_a_memory_hog_are_killed_while_the_rest_completes(tmp_path: Path) -> None:
    """The hang and the hog are the custom layer of `fixtures/keras3/custom_layer.keras` given other
    `--custom-objects` modules (no --unsafe): one sleeps while it builds, one allocates."""
    custom = FIXTURES / "keras3/custom_layer.keras"
    (tmp_path / "models.yaml").write_text(f"""
targets: [onnx]
models:
  - {{path: {custom}, name: hangs, custom_objects: {HERE / "hanging_layers.py"}}}
  - {{path: {custom}, name: hungry, custom_objects: {HERE / "hungry_layers.py"}}}
  - {{path: {custom}, name: fine, custom_objects: {FIXTURES / "custom_objects.py"}, timeout: 600}}
""")
    start = time.perf_counter()
    result = run_cli("batch", "--manifest", tmp_path / "models.yaml", "--out", tmp_path / "out", "--json",
                     "--timeout", "15", "--max-memory", "1500M", "--jobs", "2")  # fmt: skip
    seconds = time.perf_counter() - start
    assert result.returncode == 1, result.stderr
    jobs = {j["model"]: j for j in json.loads(result.stdout)["jobs"]}
    assert jobs["fine"]["status"] == "verified"
    assert jobs["hangs"]["status"] == "timeout" and re.search(r"killed after 1[5-9] s \(limit 15 s\)",
                                                              jobs["hangs"]["reason"])  # fmt: skip
    hog = jobs["hungry"]
    assert hog["status"] == "out-of-memory" and "over the limit of 1.46 GB" in hog["reason"]
    assert 1.46 * 2**30 < hog["peak_memory"] < 3 * 2**30  # killed soon after the limit, long before its 4 GB
    assert seconds < 60


class _InterruptAfterFirst(ProgressLine):
    """Ctrl-C, as it reaches a run: the first time a job ends."""

    def job_finished(self, result: JobResult) -> None:
        super().job_finished(result)
        raise KeyboardInterrupt


def _workers_of_this_process() -> list[int]:
    return _workers_of(os.getpid())


def _workers_of(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"modeltool.batch.worker" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def test_an_interrupted_run_kills_its_jobs_and_resumes(tmp_path: Path) -> None:
    entries, _ = discover_models([str(FIXTURES / "graphs/conv_bn.onnx"), str(ZOO[0])], ("onnx", "tflite"))
    settings = BatchSettings(out=str(tmp_path / "out"), jobs=2)
    with pytest.raises(KeyboardInterrupt):
        run_batch(entries, settings, progress=_InterruptAfterFirst(None))
    assert _workers_of_this_process() == []  # no job outlives the run
    resumed = run_batch(entries, settings)
    assert any(r.cached for r in resumed.results[:2]) and not resumed.results[-1].cached  # the first to end is kept
    assert [r.status for r in resumed.results] == ["error", "verified", "verified"]


def test_sigterm_ends_the_run_and_its_jobs(tmp_path: Path) -> None:
    """A CI system's time limit sends SIGTERM to `modeltool batch`: its jobs (sessions of their own,
    which the signal does not reach) end with it instead of converting on, orphaned."""
    import signal
    import subprocess
    import sys

    custom = FIXTURES / "keras3/custom_layer.keras"
    listed = tmp_path / "models.yaml"
    listed.write_text(f"models:\n  - {{path: {custom}, name: hangs, targets: [onnx], "
                      f"custom_objects: {HERE / 'hanging_layers.py'}}}\n")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "modeltool", "batch", "--manifest", str(listed),
                             "--out", str(tmp_path / "out"), "--timeout", "600", "-q"])  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while not workers and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            workers = _workers_of(proc.pid)
        assert workers, "the job never started"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()
    time.sleep(0.5)
    assert [p for p in workers if _alive(p)] == []


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_html_table_sorts_in_a_browser(zoo_run: ZooRun) -> None:
    """Headless Chromium (the report tests' driver): a click on a header sorts by it, numbers as numbers;
    the page asks for nothing but itself."""
    from tests.report.browser import Browser, find_chromium

    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium on this machine")

    def column(b: Browser, i: int) -> list[str]:
        return b.evaluate(f"Array.from(document.querySelectorAll('#jobs tbody tr')).map(r => r.children[{i}]"
                          f".getAttribute('data-v') || r.children[{i}].textContent)")  # fmt: skip

    with Browser(binary) as b:
        b.open(zoo_run.html)
        b.evaluate("document.querySelectorAll('#jobs th')[3].click()")
        times = [float(t) for t in column(b, 3)]
        assert times == sorted(times)
        b.evaluate("document.querySelectorAll('#jobs th')[3].click()")
        assert [float(t) for t in column(b, 3)] == sorted(times, reverse=True)
        b.evaluate("document.querySelectorAll('#jobs th')[2].click()")
        assert column(b, 2)[0].split()[0] == "error"  # "(cached)" when rerun
        # the summary's filters: only the failed jobs, then all again
        visible = "Array.from(document.querySelectorAll('#jobs tbody tr')).filter(r => r.style.display !== 'none')"
        b.evaluate("document.querySelector('.filters button[data-filter=failed]').click()")
        states = b.evaluate(f"{visible}.map(r => r.getAttribute('data-status'))")
        assert states and set(states) == {"failed"}
        b.evaluate("document.querySelector('.filters button[data-filter=all]').click()")
        assert b.evaluate(f"{visible}.length") == 9
        # the reasons wrap inside the page: no horizontal scroll bar
        assert b.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert b.requested_urls() == [zoo_run.html.resolve().as_uri()]
