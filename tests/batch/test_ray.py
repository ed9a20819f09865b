"""`modeltool batch --executor ray`: the tiny zoo as tasks on a real Ray instance started here
(`ray.init(num_cpus=2)`), giving the same report as the local executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeltool.batch import BatchSettings, JobResult, discover_models, run_batch
from tests.batch.conftest import TARGETS, ZOO, ZooRun
from tests.conftest import run_cli

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'modeltool-tf[ray]')")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> str:
    """A local Ray instance with two CPUs for this module; yields its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_ray_gives_the_local_executors_report(zoo_run: ZooRun, ray_cluster: str, tmp_path: Path) -> None:
    entries, _ = discover_models([str(p) for p in ZOO], tuple(TARGETS.split(",")))
    report = run_batch(entries, BatchSettings(out=str(tmp_path / "out"), executor="ray"))
    local = [JobResult.from_dict(j) for j in json.loads(zoo_run.result.stdout)["jobs"]]
    assert report.outcomes() == [r.outcome() for r in local]
    assert report.executor == "ray" and ray.is_initialized()  # a Ray the caller started stays up
    for result in report.results:
        assert not result.cached
        if result.passed:
            assert (tmp_path / "out" / result.artifact).is_file() and (tmp_path / "out" / result.report).is_file()
    again = run_batch(entries, BatchSettings(out=str(tmp_path / "out"), executor="ray"))  # the same cache
    assert all(r.cached for r in again.results) and again.outcomes() == report.outcomes()


def test_artifacts_travel_back_when_out_is_not_shared(ray_cluster: str, tmp_path: Path) -> None:
    entries, _ = discover_models([str(ZOO[0])], ("tflite",))
    report = run_batch(entries, BatchSettings(out=str(tmp_path / "out"), executor="ray", ray_artifacts="ship"))
    result = report.results[0]
    assert result.status == "verified"
    for rel in (result.artifact, result.report, result.report.replace(".json", ".txt"), result.log):
        assert (tmp_path / "out" / rel).is_file()  # written here by the driver from the task's return value


def test_the_cli_runs_on_a_cluster_by_its_address(ray_cluster: str, tmp_path: Path) -> None:
    result = run_cli("batch", ZOO[2], "--to", "onnx", "--out", tmp_path / "out", "--executor", "ray",
                     "--ray-address", ray_cluster, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["executor"] == "ray" and [j["status"] for j in report["jobs"]] == ["verified"]
