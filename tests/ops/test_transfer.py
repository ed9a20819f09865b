"""transfer-weights on the cases of Keras's transfer-learning guides. Every OUT is loaded by
Keras 3 itself and its weights compared, exactly, with the source's (read by Keras too)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from modeltool.errors import UsageError
from modeltool.ops.transfer import transfer_weights
from tests.conftest import FIXTURES, ROOT, run_cli

OUTS = ["out.keras", "out.h5", "out.weights.h5"]


def _keras():
    import keras

    keras.utils.set_random_seed(7)
    return keras


def classifier(keras, classes: int, *, extra: bool = False, body: str = "body"):
    inp = keras.Input((8,), name="x")
    h = keras.layers.Dense(16, activation="relu", name=body)(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    if extra:
        h = keras.layers.Dropout(0.3, name="drop")(h)
        h = keras.layers.Dense(12, activation="relu", name="new_dense")(h)
    out = keras.layers.Dense(classes, name="predictions")(h)
    return keras.Model(inp, out, name="clf")


def load_out(keras, out, dst_json: str):
    """OUT as Keras 3 reads it: load_model for .keras/.h5, load_weights into DST for .weights.h5."""
    if str(out).endswith(".weights.h5"):
        model = keras.models.model_from_json(dst_json)
        model.load_weights(out)
        return model
    return keras.saving.load_model(out, compile=False)


def same(a, b, layers: list[str]) -> None:
    for name in layers:
        wa, wb = a.get_layer(name).weights, b.get_layer(name).weights
        assert len(wa) == len(wb) and wa, name
        for x, y in zip(wa, wb):
            np.testing.assert_array_equal(np.asarray(x.numpy()), np.asarray(y.numpy()), err_msg=name)


@pytest.mark.parametrize("out_name", OUTS)
def test_new_head_body_transferred_head_skipped(tmp_path, out_name: str) -> None:
    keras = _keras()
    src = classifier(keras, 10)
    src.save(tmp_path / "src.keras")
    dst = classifier(keras, 5)
    (tmp_path / "dst.json").write_text(dst.to_json())
    report = transfer_weights(str(tmp_path / "src.keras"), str(tmp_path / "dst.json"), str(tmp_path / out_name))
    status = {r.layer: r.status for r in report.rows}
    assert status == {"body": "transferred", "bn": "transferred", "predictions": "shape-mismatch"}
    row = next(r for r in report.rows if r.layer == "predictions")
    assert "(16, 10) vs (16, 5)" in row.detail
    assert report.totals()["transferred"] == {"layers": 2, "weights": 6, "params": 16 * 8 + 16 + 4 * 16}
    out = load_out(keras, tmp_path / out_name, dst.to_json())
    same(src, out, ["body", "bn"])
    head = out.get_layer("predictions").weights
    assert head[0].shape == (16, 5) and np.all(np.asarray(head[1].numpy()) == 0)  # bias: Zeros initializer
    assert out(np.ones((2, 8), "float32")).shape == (2, 5)


def test_added_dropout_and_layer_initialized(tmp_path) -> None:
    keras = _keras()
    src = classifier(keras, 10)
    src.save(tmp_path / "src.h5")
    dst = classifier(keras, 10, extra=True)
    (tmp_path / "dst.json").write_text(dst.to_json())
    report = transfer_weights(str(tmp_path / "src.h5"), str(tmp_path / "dst.json"), str(tmp_path / "o.keras"))
    status = {r.layer: r.status for r in report.rows}
    assert status["new_dense"] == "missing-in-source" and status["predictions"] == "shape-mismatch"
    assert "new_dense/kernel" in report.initialized
    out = load_out(keras, tmp_path / "o.keras", dst.to_json())
    same(src, out, ["body", "bn"])
    kernel = np.asarray(out.get_layer("new_dense").weights[0].numpy())
    limit = np.sqrt(6 / (16 + 12))  # GlorotUniform's bound for a (16, 12) kernel
    assert np.abs(kernel).max() <= limit and kernel.std() > limit / 4


def test_renamed_layer_with_map_and_strict(tmp_path) -> None:
    keras = _keras()
    src = classifier(keras, 10, body="fc1")
    src.save(tmp_path / "src.keras")
    dst = classifier(keras, 10, body="dense_body")
    (tmp_path / "dst.json").write_text(dst.to_json())
    plain = transfer_weights(str(tmp_path / "src.keras"), str(tmp_path / "dst.json"), None, dry_run=True)
    assert {r.layer: r.status for r in plain.rows}["dense_body"] == "missing-in-source"
    assert {r.layer: r.status for r in plain.rows}["fc1"] == "missing-in-target"
    assert not (tmp_path / "o.keras").exists()
    report = transfer_weights(str(tmp_path / "src.keras"), str(tmp_path / "dst.json"), str(tmp_path / "o.keras"),
                              maps=["fc(\\d)=dense_body"], strict=True)  # fmt: skip
    assert report.complete and report.written
    out = load_out(keras, tmp_path / "o.keras", dst.to_json())
    for a, b in zip(src.get_layer("fc1").weights, out.get_layer("dense_body").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    same(src, out, ["bn", "predictions"])
    result = run_cli("transfer-weights", tmp_path / "src.keras", tmp_path / "dst.json", "-o", tmp_path / "s.keras",
                     "--strict", "--json")  # fmt: skip
    assert result.returncode == 1 and not (tmp_path / "s.keras").exists()
    data = json.loads(result.stdout)
    assert data["passed"] is False and data["totals"]["missing-in-source"]["layers"] == 1


def test_nested_model_by_path(tmp_path) -> None:
    """The fixture's nested model (Sequential + Functional inside Functional) into a flat copy and back."""
    keras = _keras()
    src_path = FIXTURES / "keras3/nested.keras"
    src = keras.saving.load_model(src_path)
    dst_json = (FIXTURES / "keras3/nested.json").read_text()
    report = transfer_weights(str(src_path), str(FIXTURES / "keras3/nested.json"), str(tmp_path / "o.weights.h5"),
                              strict=True)  # fmt: skip
    assert {r.layer for r in report.rows} == {"inner_block/inner_dense_1", "inner_block/inner_dense_2",
                                              "encoder/enc_dense", "head"}  # fmt: skip
    out = load_out(keras, tmp_path / "o.weights.h5", dst_json)
    for a, b in zip(src.weights, out.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # a flat model whose layers carry the nested layers' names gets them by unique name
    inp = keras.Input((6,), name="x")
    h = keras.layers.Dense(8, name="inner_dense_1")(inp)
    h = keras.layers.Dense(4, name="inner_dense_2")(h)
    flat = keras.Model(inp, h)
    (tmp_path / "flat.json").write_text(flat.to_json())
    report = transfer_weights(str(src_path), str(tmp_path / "flat.json"), str(tmp_path / "flat.keras"))
    assert {r.layer: r.status for r in report.rows}["inner_dense_1"] == "transferred"
    out = keras.saving.load_model(tmp_path / "flat.keras")
    inner = src.get_layer("inner_block").get_layer("inner_dense_2")
    np.testing.assert_array_equal(out.get_layer("inner_dense_2").weights[0].numpy(), inner.weights[0].numpy())


def test_keras2_h5_into_keras3_architecture(tmp_path) -> None:
    import tf_keras

    tf_keras.utils.set_random_seed(3)
    inp = tf_keras.Input((10,), name="tokens", dtype="int32")
    h = tf_keras.layers.Embedding(50, 6, name="embed")(inp)
    h = tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(5, name="lstm"), name="bilstm")(h)
    out = tf_keras.layers.Dense(3, name="head")(h)
    k2 = tf_keras.Model(inp, out)
    k2.save(tmp_path / "k2.h5", save_format="h5")
    keras = _keras()
    inp3 = keras.Input((10,), name="tokens", dtype="int32")
    h3 = keras.layers.Embedding(50, 6, name="embed")(inp3)
    h3 = keras.layers.Bidirectional(keras.layers.LSTM(5, name="lstm"), name="bilstm")(h3)
    k3 = keras.Model(inp3, keras.layers.Dense(3, name="head")(h3))
    k3.save(tmp_path / "k3.keras")
    report = transfer_weights(str(tmp_path / "k2.h5"), str(tmp_path / "k3.keras"), str(tmp_path / "o.keras"),
                              strict=True)  # fmt: skip
    assert report.complete
    out = keras.saving.load_model(tmp_path / "o.keras")
    for name in ("embed", "bilstm", "head"):
        for a, b in zip(k2.get_layer(name).weights, out.get_layer(name).weights):
            np.testing.assert_array_equal(a.numpy(), np.asarray(b.numpy()), err_msg=name)
    x = np.random.default_rng(0).integers(0, 50, (2, 10)).astype("int32")
    np.testing.assert_allclose(k2(x).numpy(), np.asarray(out(x)), rtol=1e-5, atol=1e-6)


def test_keras3_weights_file_into_reordered_architecture(tmp_path) -> None:
    """Keras 3's own load_weights matches by position (`dense`, `dense_1`): a reordered model gets
    the wrong weights. modeltool recovers the names and puts each weight in its layer."""
    keras = _keras()

    def chain(order: list[str]):
        inp = keras.Input((4,), name="x")
        h = inp
        for name in order:
            h = keras.layers.Dense(4, name=name)(h)
        return keras.Model(inp, h)

    src = chain(["a", "b"])
    src.get_layer("a").weights[0].assign(np.full((4, 4), 1.0))
    src.get_layer("b").weights[0].assign(np.full((4, 4), 2.0))
    src.save_weights(tmp_path / "src.weights.h5")
    dst = chain(["b", "a"])
    (tmp_path / "dst.json").write_text(dst.to_json())
    keras_own = keras.models.model_from_json(dst.to_json())
    keras_own.load_weights(tmp_path / "src.weights.h5")
    assert np.all(np.asarray(keras_own.get_layer("a").weights[0].numpy()) == 2.0)  # Keras: by position
    transfer_weights(str(tmp_path / "src.weights.h5"), str(tmp_path / "dst.json"), str(tmp_path / "o.weights.h5"),
                     strict=True)  # fmt: skip
    out = load_out(keras, tmp_path / "o.weights.h5", dst.to_json())
    assert np.all(np.asarray(out.get_layer("a").weights[0].numpy()) == 1.0)
    assert np.all(np.asarray(out.get_layer("b").weights[0].numpy()) == 2.0)


def test_checkpoint_source_and_errors(tmp_path) -> None:
    """A checkpoint (with its architecture) is a source like any other; bad requests exit 2."""
    keras = _keras()
    ckpt = FIXTURES / "tf/keras3_ckpt"
    report = transfer_weights(str(ckpt), str(FIXTURES / "keras3/conv_bn.json"), str(tmp_path / "o.keras"),
                              src_config=str(FIXTURES / "keras3/conv_bn.json"), strict=True)  # fmt: skip
    assert report.complete
    out = keras.saving.load_model(tmp_path / "o.keras")
    import tensorflow as tf

    ref = keras.models.model_from_json((FIXTURES / "keras3/conv_bn.json").read_text())
    tf.train.Checkpoint(model=ref).read(str(ckpt / "ckpt-1")).expect_partial()
    for a, b in zip(ref.weights, out.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(UsageError, match="OUT must be"):
        transfer_weights(str(ckpt), str(FIXTURES / "keras3/conv_bn.json"), str(tmp_path / "o.onnx"))
    result = run_cli("transfer-weights", FIXTURES / "keras3/conv_bn.json", FIXTURES / "keras3/conv_bn.json",
                     "-o", tmp_path / "x.keras")  # fmt: skip
    assert result.returncode == 2 and "holds no weights" in result.stderr
    result = run_cli("transfer-weights", FIXTURES / "keras3/conv_bn.keras", FIXTURES / "keras3/conv_bn.keras",
                     "-o", tmp_path / "o.keras")  # fmt: skip
    assert result.returncode == 2 and "exists" in result.stderr  # no overwrite without --force


SCRIPT = """
import sys, json
from modeltool.cli import main
rc = main(["transfer-weights", *sys.argv[1:4], "-o", sys.argv[4], "--json"])
print("HEAVY" + json.dumps([m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules]))
"""


@pytest.mark.parametrize("out_name", OUTS)
def test_no_tensorflow_for_keras_files(tmp_path, out_name: str) -> None:
    src, dst = FIXTURES / "keras2/functional_multi_io.h5", FIXTURES / "keras3/functional_multi_io.keras"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(src), str(dst), "--strict", str(tmp_path / out_name)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.split("HEAVY", 1)[1]) == []
    keras = _keras()
    out = load_out(keras, tmp_path / out_name, (FIXTURES / "keras3/functional_multi_io.json").read_text())
    import tf_keras

    k2 = tf_keras.models.load_model(src, compile=False)  # our own fixture, written by tf_keras: trusted
    for layer in k2.layers:
        for a, b in zip(layer.weights, out.get_layer(layer.name).weights):
            np.testing.assert_array_equal(a.numpy(), np.asarray(b.numpy()))


@pytest.mark.parametrize("name", ["conv_bn", "rnn_text", "nested", "shared_layers", "reshaping"])
def test_keras2_architecture_to_keras3_files(tmp_path, name: str) -> None:
    """DST a Keras 2 config: the written .keras/.h5 carry a Keras 3 config that Keras 3 loads."""
    import modeltool

    keras = _keras()
    source = modeltool.load(FIXTURES / f"keras2/{name}.h5")
    for out_name in ("o.keras", "o.h5"):
        report = transfer_weights(str(FIXTURES / f"keras2/{name}.h5"), str(FIXTURES / f"keras2/{name}.json"),
                                  str(tmp_path / out_name), strict=True)  # fmt: skip
        assert report.complete
        out = keras.saving.load_model(tmp_path / out_name, compile=False)
        assert out.count_params() == source.params.total
        got = sorted((np.asarray(v.numpy()) for v in out.weights), key=lambda a: (a.shape, a.tobytes()))
        want = sorted((w.value() for w in source.weights), key=lambda a: (a.shape, a.tobytes()))
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_keras1_weights_into_their_architecture(tmp_path) -> None:
    """Keras 1 per-gate GRU arrays (corpus) converted into the Keras 3 layout; Keras 3 loads the
    result and its weights equal what `convert` makes of the same files."""
    from modeltool.convert import ConvertOptions, convert
    from modeltool.ops.diff import diff_files
    from tests.conftest import CORPUS

    weights, arch = CORPUS / "k1_chemts_gru_weights/model.h5", CORPUS / "k1_chemts_gru_json/model.json"
    if not weights.exists():
        pytest.skip("corpus absent")
    report = transfer_weights(str(weights), str(arch), str(tmp_path / "t.keras"), strict=True)
    assert report.complete and any("legacy arrays" in r.detail for r in report.rows)
    assert convert(arch, str(tmp_path / "c.keras"), ConvertOptions(weights_from=str(weights))).written
    assert diff_files(str(tmp_path / "t.keras"), str(tmp_path / "c.keras")).equal
    keras = _keras()
    from modeltool.keras.semantics import legacy_objects

    loaded = keras.saving.load_model(tmp_path / "t.keras", custom_objects=legacy_objects())
    assert loaded.count_params() == 661056


def test_nothing_transferred_is_exit_1_unless_allowed(tmp_path) -> None:
    """Two unrelated models: no layer name matches, so OUT would be DST's own weights with exit 0."""
    src, dst = FIXTURES / "keras3/conv_bn.keras", FIXTURES / "keras3/sequential_mlp.keras"
    report = transfer_weights(str(src), str(dst), str(tmp_path / "o.keras"))
    assert report.empty and not report.passed and not report.written
    assert not (tmp_path / "o.keras").exists()
    result = run_cli("transfer-weights", src, dst, "-o", tmp_path / "o.keras")
    assert result.returncode == 1 and "no weight was transferred" in result.stderr
    assert not (tmp_path / "o.keras").exists()
    result = run_cli("transfer-weights", src, dst, "-o", tmp_path / "o.keras", "--allow-empty", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["empty"] is True
    assert (tmp_path / "o.keras").exists()


def test_low_fraction_warns(tmp_path) -> None:
    """A transfer that fills a small part of DST says so, loudly, first."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="head")])
    small.save(tmp_path / "src.keras")
    layers = [keras.layers.Dense(2, name="head"), keras.layers.Dense(400, name="body")]
    big = keras.Sequential([keras.Input((4,)), *layers])
    big.save(tmp_path / "dst.keras")
    report = transfer_weights(str(tmp_path / "src.keras"), str(tmp_path / "dst.keras"), str(tmp_path / "o.keras"))
    assert report.written and not report.empty
    assert report.warnings and report.warnings[0].startswith("only 10 of")
