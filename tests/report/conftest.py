"""Models the report tests draw: a diff pair written as Keras JSON (no TensorFlow), ResNet50 as an
.h5 written by Keras in a child process (only the slow browser tests ask for it)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES


@pytest.fixture
def diff_pair(tmp_path: Path) -> tuple[Path, Path]:
    """sequential_mlp's architecture (A) and an edit of it (B): `hidden` widened from 32 to 48 units,
    `dropout` removed, a Dense `extra` added before the classifier."""
    a = json.loads((FIXTURES / "keras3/sequential_mlp.json").read_text())
    b = copy.deepcopy(a)
    layers = b["config"]["layers"]
    layers[1]["config"]["units"] = 48
    extra = copy.deepcopy(layers[1])
    extra["config"].update(name="extra", units=24)
    layers[2] = extra
    paths = tmp_path / "a.json", tmp_path / "b.json"
    for path, config in zip(paths, (a, b)):
        path.write_text(json.dumps(config))
    return paths


@pytest.fixture(scope="session")
def resnet50_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """keras.applications.ResNet50 (random weights) saved as a legacy .h5: Keras only writes it, in
    a child process, so TensorFlow never enters the test process."""
    path = tmp_path_factory.mktemp("resnet50") / "model.h5"
    code = ("import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
            "import keras\n"
            f"keras.applications.ResNet50(weights=None).save({str(path)!r})\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=900)
    return path
