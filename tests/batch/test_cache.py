"""Cache keys follow content (not names or places), options, the files options name, and versions;
memory planning of the local pool; no conversion runs here."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from modeltool.batch.cache import Cache, library_versions
from modeltool.batch.jobs import VERIFIED, Job, JobResult
from modeltool.batch.local import next_startable
from tests.conftest import FIXTURES


def _job(source: Path, target: str = "onnx", **options: object) -> Job:
    return Job(f"m -> {target}", "m", str(source), target, dict(options), f"m/m.{target}")


def test_keys_follow_content_not_place(tmp_path: Path) -> None:
    cache = Cache(str(tmp_path / "cache"))
    versions = library_versions()
    shutil.copytree(FIXTURES / "tf/keras3_export", tmp_path / "moved")
    shutil.copy(FIXTURES / "keras3/conv_bn.keras", tmp_path / "renamed.keras")
    key = cache.job_key(_job(FIXTURES / "tf/keras3_export"), versions)
    assert cache.job_key(_job(tmp_path / "moved"), versions) == key  # a folder: its files and their names
    assert cache.job_key(_job(tmp_path / "renamed.keras"), versions) == cache.job_key(
        _job(FIXTURES / "keras3/conv_bn.keras"), versions)  # fmt: skip
    (tmp_path / "moved/extra.txt").write_text("x")
    different = [
        Cache(str(tmp_path / "next-run")).job_key(_job(tmp_path / "moved"), versions),  # hashes are kept for a run
        cache.job_key(_job(FIXTURES / "tf/keras3_export", "tflite"), versions),
        cache.job_key(_job(FIXTURES / "tf/keras3_export", batch=1), versions),
        cache.job_key(_job(FIXTURES / "tf/keras3_export"), {**versions, "tf2onnx": "0.0"}),
    ]
    assert len({key, *different}) == 5


def test_keys_follow_the_content_of_files_options_name(tmp_path: Path) -> None:
    module = tmp_path / "layers.py"
    module.write_text("A = 1\n")
    job = _job(FIXTURES / "keras3/custom_layer.keras", custom_objects=str(module))
    before = Cache(str(tmp_path / "c1")).job_key(job, {})
    module.write_text("A = 2\n")
    assert Cache(str(tmp_path / "c2")).job_key(job, {}) != before


def test_a_hit_needs_its_files_under_out(tmp_path: Path) -> None:
    cache = Cache(str(tmp_path / "cache"))
    job = replace(_job(FIXTURES / "keras3/conv_bn.keras"), key="k")
    (tmp_path / "out/m").mkdir(parents=True)
    for name in ("m.onnx", "m.onnx.report.json"):
        (tmp_path / "out/m" / name).write_text("x")
    cache.put(job, JobResult(job.id, "m", "onnx", VERIFIED, artifact="m/m.onnx", report="m/m.onnx.report.json"))
    assert cache.get(job, str(tmp_path / "out")).cached
    (tmp_path / "out/m/m.onnx").unlink()
    assert cache.get(job, str(tmp_path / "out")) is None
    cache.put(job, JobResult(job.id, "m", "onnx", "crashed"))  # may pass on a rerun: not recorded
    assert cache.get(job, str(tmp_path / "out")) is None


def test_a_kill_at_a_limit_is_kept_until_the_limit_is_raised(tmp_path: Path) -> None:
    cache = Cache(str(tmp_path / "cache"))
    job = replace(_job(FIXTURES / "keras3/conv_bn.keras"), key="k", timeout=15, max_memory=2 << 30)
    cache.put(job, JobResult(job.id, "m", "onnx", "timeout", details={"limit": 15}))
    assert cache.get(job, str(tmp_path)).status == "timeout"
    assert cache.get(replace(job, timeout=10), str(tmp_path)) is not None
    assert cache.get(replace(job, timeout=60), str(tmp_path)) is None
    assert cache.get(replace(job, timeout=None), str(tmp_path)) is None
    cache.put(job, JobResult(job.id, "m", "onnx", "out-of-memory", details={"limit": 2 << 30}))
    assert cache.get(job, str(tmp_path)).status == "out-of-memory"
    assert cache.get(replace(job, max_memory=4 << 30), str(tmp_path)) is None
    cache.put(job, JobResult(job.id, "m", "onnx", "out-of-memory"))  # the system's OOM killer: no limit of ours
    assert cache.get(job, str(tmp_path)) is None


def test_peaks_are_remembered_per_source_and_target(tmp_path: Path) -> None:
    job = _job(FIXTURES / "keras3/conv_bn.keras")
    cache = Cache(str(tmp_path / "cache"))
    cache.remember_peak(job, JobResult(job.id, "m", "onnx", "out-of-memory", peak_memory=3 << 30))
    cache.save()
    assert Cache(str(tmp_path / "cache")).peak(replace(job, options={"batch": 1})) == 3 << 30


def test_big_jobs_are_not_started_side_by_side_beyond_the_budget() -> None:
    def job(name: str, gb: float) -> Job:
        return Job(name, name, name, "onnx", {}, name, estimate=int(gb * 2**30))

    big, small, other_big = job("big", 6), job("small", 1), job("other", 5)
    budget = 8 << 30
    assert next_startable([big, other_big, small], [], budget) == 0  # nothing runs: the first starts
    assert next_startable([other_big, small], [big], budget) == 1  # the small one fits beside it
    assert next_startable([other_big], [big, small], budget) is None  # waits for memory
    assert next_startable([job("huge", 20)], [], budget) == 0  # never waits forever
