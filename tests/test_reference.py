"""What the reference is: the writer's runtime for Keras 2 files, never a random reference, and a
noise floor that cannot pass unrelated outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeltool.verify import NOISE_MIN_COSINE, TOLERANCES, compare_arrays
from tests.conftest import CORPUS, FIXTURES, requires_corpus, run_cli

KERAS2 = FIXTURES / "keras2" / "sequential_mlp.h5"
KERAS3 = FIXTURES / "keras3" / "sequential_mlp.keras"


def test_keras2_reference_is_tf_keras_and_rebuild_on_request(tmp_path):
    proc = run_cli("convert", KERAS2, tmp_path / "a.onnx", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["verification"]
    assert report["reference_kind"].startswith("writer: tf_keras")
    assert "tf_keras" in report["reference_backend"]
    proc = run_cli("verify", KERAS2, tmp_path / "a.onnx", "--reference", "rebuild", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["reference_kind"].startswith("rebuild: modeltool's Keras 3")


def test_writer_reference_of_a_keras3_file_is_keras3_loading_it(tmp_path):
    proc = run_cli("convert", KERAS3, tmp_path / "a.onnx", "--reference", "writer", "--json")
    assert proc.returncode == 0, proc.stderr
    kind = json.loads(proc.stdout)["verification"]["reference_kind"]
    assert kind.startswith("writer: Keras 3") and "loaded the file itself (keras.saving.load_model, safe_mode)" in kind


def test_writer_reference_of_a_file_naming_code_is_a_usage_error(tmp_path):
    proc = run_cli("convert", FIXTURES / "keras3/custom_layer.keras", tmp_path / "a.onnx", "--reference", "writer",
                   "--custom-objects", FIXTURES / "custom_objects.py")  # fmt: skip
    assert proc.returncode == 2
    assert "never handed to a loader" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a.onnx").exists()


def test_option_the_target_does_not_take_is_exit_2(tmp_path):
    proc = run_cli("convert", KERAS3, tmp_path / "a.pb", "--quantize", "int8")  # ONNX and TFLite take it, .pb not
    assert proc.returncode == 2
    assert "--quantize" in proc.stderr and "pb" in proc.stderr
    assert not (tmp_path / "a.pb").exists()


def test_noise_floor_never_passes_unrelated_outputs():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(100)
    unrelated = rng.standard_normal(100)
    huge_floor = 100.0  # a random reference makes its own floor large
    check = compare_arrays(ref, unrelated, TOLERANCES["float32"], huge_floor)
    assert not check["passed"] and check["cosine"] < NOISE_MIN_COSINE
    assert "noise floor" in check["verdict"] and "chaotic" in check["verdict"]  # says why, not just "differ"
    far = compare_arrays(ref, unrelated, TOLERANCES["float32"], 1e-3)  # a small floor: plainly different
    assert not far["passed"] and far["verdict"].startswith("values differ (") and "chaotic" not in far["verdict"]
    close = ref + 1e-3 * rng.standard_normal(100)
    check = compare_arrays(ref, close, TOLERANCES["float32"], 1e-3)
    assert check["passed"] and "noise floor" in check["verdict"] and "cosine" in check["verdict"]


def _dropout_graph(path):
    """A TF1 frozen graph whose output goes through a dropout fed by a keep_prob placeholder."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
        keep = tf.compat.v1.placeholder(tf.float32, [], name="keep_prob")
        w = tf.constant(np.random.default_rng(0).standard_normal((8, 6)).astype("float32"))
        h = tf.matmul(x, w)
        mask = tf.floor(keep + tf.random.uniform(tf.shape(h)))  # TF1's dropout, as tutorials froze it
        tf.identity(h / keep * mask, name="y")
    path.write_bytes(graph.as_graph_def().SerializeToString())


def test_random_reference_fails_naming_its_ops_and_inputs(tmp_path):
    _dropout_graph(tmp_path / "drop.pb")
    proc = run_cli("convert", tmp_path / "drop.pb", tmp_path / "d.onnx", "--inputs", "x,keep_prob", "--outputs", "y")
    assert proc.returncode == 1, proc.stderr
    assert "not deterministic" in proc.stdout and "RandomUniform" in proc.stdout and "keep_prob" in proc.stdout
    assert not (tmp_path / "d.onnx").exists()
    # fixed by the user: keep_prob = 1 makes the dropout the identity
    x = np.random.default_rng(1).standard_normal((2, 8)).astype("float32")
    np.savez(tmp_path / "in.npz", x=x, keep_prob=np.float32(1.0))
    proc = run_cli("convert", tmp_path / "drop.pb", tmp_path / "d.onnx", "--inputs", "x,keep_prob", "--outputs", "y",
                   "--input", tmp_path / "in.npz")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "result: PASSED" in proc.stdout


@requires_corpus
@pytest.mark.corpus
def test_corpus_frozen_lstm_with_random_keep_prob_fails(tmp_path):
    src = CORPUS / "tf2onnx_lstm_frozen" / "frozen.pb"
    proc = run_cli("convert", src, tmp_path / "l.onnx", "--inputs", "X=1x784,keep_prob=()", "--outputs", "output")
    assert proc.returncode == 1, proc.stderr
    assert "not deterministic" in proc.stdout and "keep_prob" in proc.stdout
    assert "PASSED" not in proc.stdout
