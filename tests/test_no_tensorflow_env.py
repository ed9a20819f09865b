"""The light install: modeltool with JAX, Keras, onnx and onnxruntime, and no TensorFlow at all.

A virtual environment without TensorFlow is created once and reused (`MODELTOOL_NOTF_VENV`, default
`~/.cache/modeltool/venv-notf-<python>`): the packages the light install needs, pinned to this
environment's versions, and modeltool from this checkout installed with `--no-deps` (reinstalled only
when the checkout's sources change). In it, Keras files convert to ONNX by the direct route and are
verified against Keras 3 on JAX; `tensorflow` is never imported; the written files compute what the
fixtures' writers computed (tf_keras for Keras 2 files: `fixtures/references/`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT
from tests.exporters.conftest import CUSTOM_OBJECTS, assert_matches_writer

pytestmark = pytest.mark.slow

PYTHON_TAG = f"py{sys.version_info.major}{sys.version_info.minor}"
VENV = Path(os.environ.get("MODELTOOL_NOTF_VENV", Path.home() / ".cache" / "modeltool" / f"venv-notf-{PYTHON_TAG}"))
#: the light install (the `jax`, `ort` and `litert` extras plus the core dependencies the convert path uses),
#: pinned to what this environment runs so that both environments compute with the same libraries
PACKAGES = ("keras", "onnx", "onnxruntime", "numpy", "h5py", "click", "pyyaml", "tflite", "flatbuffers",
            "ai-edge-litert")  # fmt: skip
HEAVY = ("tensorflow", "tf2onnx", "tf_keras")


def _requirements() -> list[str]:
    out = ["jax"]
    for name in PACKAGES:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def _source_stamp() -> str:
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "modeltool").rglob("*.py"), ROOT / "pyproject.toml"]):
        digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()


def _pip(python: Path, *args: str, timeout: int = 1200) -> None:
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def light_python() -> Path:
    """The environment's interpreter, created or brought up to date first."""
    python = VENV / "bin" / "python"
    wanted = "\n".join(_requirements())
    marker = VENV / "modeltool-requirements.txt"
    if not python.exists() or not marker.exists() or marker.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
        _pip(python, *wanted.splitlines())
        marker.write_text(wanted)
    stamp, stamp_file = _source_stamp(), VENV / "modeltool-source.txt"
    if not stamp_file.exists() or stamp_file.read_text() != stamp:
        _pip(python, "--no-deps", "--force-reinstall", str(ROOT), timeout=600)
        stamp_file.write_text(stamp)
    probe = subprocess.run([str(python), "-c", "import importlib.util as u, json; print(json.dumps("
                            f"[m for m in {list(HEAVY)!r} if u.find_spec(m)]))"], capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert probe.returncode == 0 and json.loads(probe.stdout) == [], probe.stdout + probe.stderr
    return python


CONVERT = """
import json, sys
from modeltool.convert import convert
from modeltool.options import ConvertOptions
out = {}
for src, dst, custom in json.loads(sys.argv[1]):
    report = convert(src, dst, ConvertOptions(force=True, custom_objects=custom))
    v = report.verification
    out[src] = {"passed": report.passed, "written": report.written, "route": report.details.get("route"),
                "backend": v.reference_backend if v else None, "kind": v.reference_kind if v else None,
                "text": report.render()}
out["modules"] = [m for m in ("tensorflow", "tf2onnx", "tf_keras") if m in sys.modules]
print("RESULT" + json.dumps(out))
"""

SOURCES = ["keras3/conv_bn.keras", "keras3/rnn_text.keras", "keras3/nested.keras", "keras3/normalization.keras",
           "keras3/custom_layer.keras", "keras2/conv_bn.h5", "keras2/rnn_text.h5", "keras2/functional_multi_io.h5",
           "keras2/shared_layers.h5"]  # fmt: skip


def _run(python: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd="/")


def test_fixtures_convert_and_verify_without_tensorflow(light_python: Path, tmp_path: Path) -> None:
    jobs = [(str(FIXTURES / rel), str(tmp_path / f"{i}.onnx"), CUSTOM_OBJECTS if "custom" in rel else None)
            for i, rel in enumerate(SOURCES)]  # fmt: skip
    proc = _run(light_python, "-c", CONVERT, json.dumps(jobs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result.pop("modules") == []  # tensorflow never imported (it is not even installed)
    for (src, dst, _), rel in zip(jobs, SOURCES):
        entry = result[src]
        assert entry["passed"] and entry["written"] and entry["route"] == "direct", entry["text"]
        assert "JAX" in entry["backend"], entry["backend"]
        if rel.startswith("keras2"):  # no tf_keras: the rebuild stands in, keeping Keras 2 meanings, and says so
            assert "tf_keras (the Keras 2 runtime) is not installed" in entry["kind"], entry["kind"]
        # the file computes what the fixture's own writer (Keras 3, or tf_keras) computed
        assert_matches_writer(rel.split(".")[0], dst)


TFLITE_SOURCES = ["keras3/conv_bn.keras", "keras3/functional_multi_io.keras", "keras2/conv_bn.h5",
                  "keras2/shared_layers.h5"]  # fmt: skip


def test_fixtures_convert_to_tflite_without_tensorflow(light_python: Path, tmp_path: Path) -> None:
    """The direct TFLite route on the light install: written with flatbuffers, verified in LiteRT
    against Keras on JAX, TensorFlow never imported; the files compute what the writers computed."""
    jobs = [(str(FIXTURES / rel), str(tmp_path / f"{i}.tflite"), None) for i, rel in enumerate(TFLITE_SOURCES)]
    proc = _run(light_python, "-c", CONVERT, json.dumps(jobs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result.pop("modules") == []
    for (src, dst, _), rel in zip(jobs, TFLITE_SOURCES):
        entry = result[src]
        assert entry["passed"] and entry["written"] and entry["route"] == "direct", entry["text"]
        assert "JAX" in entry["backend"], entry["backend"]
        assert_matches_writer(rel.split(".")[0], dst)


def test_cli_converts_a_bundled_fixture_in_seconds(light_python: Path, tmp_path: Path) -> None:
    """README command 1 on the light install: convert a bundled fixture to ONNX, verified."""
    start = time.perf_counter()
    proc = _run(light_python, "-m", "modeltool", "convert", str(FIXTURES / "keras3/conv_bn.keras"),
                str(tmp_path / "conv_bn.onnx"), "--json")  # fmt: skip
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] and report["details"]["route"] == "direct"
    assert seconds < 60, seconds  # seconds on an idle machine; generous for a loaded CI host


def test_tensorflow_route_names_the_missing_extra(light_python: Path, tmp_path: Path) -> None:
    proc = _run(light_python, "-m", "modeltool", "convert", str(FIXTURES / "keras3/conv_bn.keras"),
                str(tmp_path / "m.onnx"), "--via", "tf")  # fmt: skip
    assert proc.returncode == 2 and "modeltool-tf[tf]" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "m.onnx").exists()


SAVE_UNDER_JAX = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import keras
assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(3)
inp = keras.Input((8, 8, 3), name="pixels")
x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
x = keras.layers.BatchNormalization()(x)
x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
seq = keras.layers.Reshape((16, 4))(x)
seq = keras.layers.GRU(5)(seq)
keras.Model(inp, keras.layers.Dense(3, activation="softmax")(seq)).save(sys.argv[1])
"""


def test_keras_file_saved_under_jax_converts(light_python: Path, tmp_path: Path) -> None:
    """A `.keras` file written by Keras 3 on JAX converts directly (here, without TensorFlow) and
    computes what Keras on TensorFlow computes from the same file in this process."""
    import keras

    src, dst = tmp_path / "jax_model.keras", tmp_path / "jax_model.onnx"
    saved = _run(light_python, "-c", SAVE_UNDER_JAX, str(src), timeout=300)
    assert saved.returncode == 0, saved.stderr[-2000:]
    proc = _run(light_python, "-m", "modeltool", "convert", str(src), str(dst), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["details"]["route"] == "direct"
    import numpy as np
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    want = np.asarray(keras.saving.load_model(src, compile=False)(x, training=False))
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
