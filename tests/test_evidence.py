"""A verification that proves nothing says so: INCONCLUSIVE (exit 1 in verify and check, the file kept
with a loud warning by convert), naming the output and why. Models are built with Keras here so
that their outputs are tiny, saturated or independent of the input by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import CORPUS, requires_corpus, run_cli


def _save(tmp_path, name: str, build) -> str:
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((6,), name="x")
    model = keras.Model(x, build(keras, x), name=name)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    return path


def _saturated(keras, x):
    big = keras.initializers.RandomNormal(stddev=1000.0, seed=1)
    return keras.layers.Dense(4, activation="softmax", kernel_initializer=big, name="probs")(x)


def _constant(keras, x):
    dead = keras.layers.Dense(8, activation="relu", bias_initializer=keras.initializers.Constant(-100.0))(x)
    return keras.layers.Dense(2, bias_initializer=keras.initializers.Constant(0.3), name="out")(dead)


def _tiny(keras, x):
    return keras.layers.Dense(3, kernel_initializer=keras.initializers.Constant(1e-9), name="small")(x)


def _fine(keras, x):
    return keras.layers.Dense(3, activation="tanh", name="y")(keras.layers.Dense(8, activation="relu")(x))


@pytest.mark.parametrize(("build", "why"), [
    (_saturated, "probs: saturated: every value is exactly 0 or 1"),
    (_constant, "out: the same values for every input (each row of two random draws)"),
    (_tiny, "small: every value is within the tolerance of zero"),
])  # fmt: skip
def test_uninformative_outputs_are_inconclusive(build, why, tmp_path):
    src = _save(tmp_path, build.__name__.strip("_"), build)
    out = tmp_path / "m.onnx"
    done = run_cli("convert", src, out, "--json")
    assert done.returncode == 0, done.stderr  # the file is kept ...
    report = json.loads(done.stdout)
    assert out.exists() and report["written"]
    assert report["verdict"] == "INCONCLUSIVE" and report["verification"]["verdict"] == "INCONCLUSIVE"
    assert any(why in r for r in report["verification"]["inconclusive"]), report["verification"]["inconclusive"]
    assert any(w.startswith("INCONCLUSIVE") and "--input real.npz" in w for w in report["warnings"])
    # ... and verify / check say it proves nothing: exit 1
    done = run_cli("verify", src, out)
    assert done.returncode == 1, done.stdout
    assert "result: INCONCLUSIVE" in done.stdout and why in done.stdout
    done = run_cli("check", out, "--reference", src, "--json")
    assert done.returncode == 1
    assert any(r["rule"] == "parity.evidence" and r["status"] == "fail" for r in json.loads(done.stdout)["rules"])


def test_an_informative_output_passes(tmp_path):
    src = _save(tmp_path, "fine", _fine)
    done = run_cli("verify", src, src)
    assert done.returncode == 0 and "result: PASSED" in done.stdout, done.stdout


def test_real_inputs_make_it_conclusive(tmp_path):
    """The constant model is what it is on any input; the tiny one is not tiny on large inputs."""
    src = _save(tmp_path, "tiny", _tiny)
    np.savez(tmp_path / "real.npz", x=np.full((2, 6), 1e6, "float32"))
    done = run_cli("verify", src, src, "--input", tmp_path / "real.npz")
    assert done.returncode == 0 and "result: PASSED" in done.stdout, done.stdout


@requires_corpus
def test_corpus_autoencoder_on_random_inputs_is_inconclusive(tmp_path):
    """Its outputs on random inputs are about 1e-20: 'cosine 0 ... ok close ... PASSED' before."""
    done = run_cli("convert", CORPUS / "k2_qusai_conv_autoencoder/autoencoder.h5", tmp_path / "ae.onnx", "--json")
    assert done.returncode == 0, done.stderr
    verification = json.loads(done.stdout)["verification"]
    assert verification["verdict"] == "INCONCLUSIVE" and not verification["passed"]
    assert "conv2d_2: every value is within the tolerance of zero" in verification["inconclusive"][0]


def test_batch_reports_an_inconclusive_job_as_such(tmp_path):
    """`modeltool batch` listed the saturated model as "verified": its own status, a failed job whose
    file is kept, a JUnit <failure>."""
    import xml.etree.ElementTree as ET

    src = _save(tmp_path, "saturated", _saturated)
    done = run_cli("batch", src, "--to", "onnx", "--out", tmp_path / "out", "--json", "--junit", tmp_path / "j.xml")
    assert done.returncode == 1, done.stderr
    (job,) = json.loads(done.stdout)["jobs"]
    assert job["status"] == "inconclusive" and "saturated" in job["reason"], job
    assert (tmp_path / "out" / job["artifact"]).exists()
    (case,) = ET.parse(tmp_path / "j.xml").getroot().findall("testcase")
    assert case.find("failure") is not None and case.find("failure").get("type") == "inconclusive"
