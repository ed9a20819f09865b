"""Teachable Machine image exports, the commonest Keras files in the wild, in each variant of the
family: a `Sequential` holding a `Sequential` feature extractor around a nested functional model and
a `Sequential` head, as Keras 2.4+ writes it and as tf.keras 2.2.4-tf wrote it (`Model` for
functional classes, `dtype` inside initializer configs, which Keras 3 refuses).

Each converts to every runnable target and to `.keras`, and each result computes what tf_keras
(the writer's runtime) computed from the model that was saved, on the same inputs. The corpus
export (`tm_keras_model_ml4design`) is checked the same way in `test_corpus_writer.py`.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from modeltool.convert import convert

RNG = np.random.default_rng(21)
TARGETS = ["m.onnx", "m.tflite", "sm/", "m.keras"]


def _tm_model():
    import tf_keras as k

    k.utils.set_random_seed(21)
    image = k.Input((32, 32, 3), name="input_1")
    x = k.layers.ZeroPadding2D(((0, 1), (0, 1)), name="Conv1_pad")(image)
    x = k.layers.Conv2D(8, 3, strides=2, use_bias=False, name="Conv1")(x)
    x = k.layers.BatchNormalization(name="bn_Conv1")(x)
    x = k.layers.ReLU(6.0, name="Conv1_relu")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = k.layers.BatchNormalization(name="dw_BN")(x)
    features = k.Model(image, k.layers.GlobalAveragePooling2D(name="gap")(x), name="model1")
    body = k.Sequential([k.Input((32, 32, 3), name="model1_input"), features], name="sequential_1")
    head = k.Sequential([k.Input((8,), name="dense_Dense1_input"), k.layers.Dense(10, activation="relu",
                         name="dense_Dense1"), k.layers.Dense(3, activation="softmax", use_bias=False,
                         name="dense_Dense2")], name="sequential_3")  # fmt: skip
    model = k.Sequential([k.Input((32, 32, 3), name="sequential_1_input"), body, head], name="sequential_4")
    for layer in (features.get_layer("bn_Conv1"), features.get_layer("dw_BN")):  # trained-looking statistics
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([gamma * 1.5, beta + 0.1, RNG.standard_normal(mean.shape) * 0.1, var + 0.5])
    return model


def _as_2_2_4_tf(path) -> None:
    """What tf.keras 2.2.4-tf wrote: `Model` for functional classes, initializer `dtype`s."""

    def patch(value):
        if isinstance(value, dict):
            if value.get("class_name") == "Functional":
                value["class_name"] = "Model"
            for key, item in value.items():
                if key.endswith("_initializer") and isinstance(item, dict) and isinstance(item.get("config"), dict):
                    if item["class_name"] not in ("Zeros", "Ones"):
                        item["config"]["dtype"] = "float32"
                patch(item)
        elif isinstance(value, list):
            for item in value:
                patch(item)

    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        patch(config)
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.2.4-tf"


@pytest.fixture(scope="module")
def tm_files(tmp_path_factory):
    """{variant: path} and what tf_keras computed on `x` before saving."""
    out = tmp_path_factory.mktemp("tm")
    model = _tm_model()
    model.save(out / "keras_model.h5")
    (out / "keras_model_224tf.h5").write_bytes((out / "keras_model.h5").read_bytes())
    _as_2_2_4_tf(out / "keras_model_224tf.h5")
    x = RNG.standard_normal((2, 32, 32, 3)).astype("float32")
    return {"2.x": out / "keras_model.h5", "2.2.4-tf": out / "keras_model_224tf.h5"}, x, model.predict(x, verbose=0)


def _run(path: str, x: np.ndarray) -> np.ndarray:
    if path.endswith(".keras"):
        import keras

        return np.asarray(keras.saving.load_model(path, compile=False)(x, training=False))
    from modeltool.sources import open_runner

    with open_runner(path) as runner:
        (name,) = [s.name for s in runner.input_specs()]
        (out,) = runner.infer({name: x}).values()
    return out


def test_keras3_itself_refuses_both_variants(tm_files) -> None:
    """The family is real trouble: Keras 3's own loader takes neither variant."""
    import keras

    files, _, _ = tm_files
    for path in files.values():
        with pytest.raises(Exception):  # noqa: B017 - any refusal; which one differs by variant
            keras.saving.load_model(path, compile=False)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("variant", ["2.x", "2.2.4-tf"])
def test_every_variant_converts_to_every_target_matching_tf_keras(tmp_path, tm_files, variant, target) -> None:
    files, x, expected = tm_files
    dst = f"{tmp_path}/{target}"
    report = convert(files[variant], dst)
    assert report.written and report.passed, report.render()
    if report.verification is not None:
        assert report.verification.reference_kind.startswith("writer: tf_keras")
    np.testing.assert_allclose(_run(dst.rstrip("/"), x), expected, rtol=1e-3, atol=1e-5)
