"""The tiny zoo of the batch tests, and one real `modeltool batch` run over it shared by them.

Five fixtures, each a different kind of source: a Keras 3 `.keras` MLP and Conv/BatchNorm model, a
Keras 2 `.h5`, a Keras 3 SavedModel export, and an ONNX file, which is no convertible source: its
jobs must fail cleanly while the rest pass. Targets ONNX and TFLite: ten jobs.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_cli

HERE = Path(__file__).parent
ZOO = [
    FIXTURES / "keras3/sequential_mlp.keras",
    FIXTURES / "keras3/conv_bn.keras",
    FIXTURES / "keras2/sequential_mlp.h5",
    FIXTURES / "tf/keras3_export",
    FIXTURES / "graphs/conv_bn.onnx",
]
TARGETS = "onnx,tflite"
NOT_CONVERTIBLE = "conv_bn.onnx"


@dataclass
class ZooRun:
    out: Path
    junit: Path
    html: Path
    args: list[str]
    result: subprocess.CompletedProcess
    seconds: float


@pytest.fixture(scope="session")
def zoo_run(tmp_path_factory: pytest.TempPathFactory) -> ZooRun:
    """`modeltool batch <zoo> --to onnx,tflite --out OUT --json --junit --html`, run once."""
    tmp = tmp_path_factory.mktemp("zoo")
    out, junit, html = tmp / "out", tmp / "report.xml", tmp / "pages" / "report.html"
    html.parent.mkdir()
    args = ["batch", *map(str, ZOO), "--to", TARGETS, "--out", str(out), "--json", "--junit", str(junit),
            "--html", str(html), "--jobs", "2"]  # fmt: skip
    start = time.perf_counter()
    result = run_cli(*args, timeout=600)
    return ZooRun(out, junit, html, args, result, time.perf_counter() - start)
