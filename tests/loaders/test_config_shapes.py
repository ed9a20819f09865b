"""Every shape Keras 3.0-3.15 serializes an object in must read: a loss by plain string inside the
serialized dict, a Lambda wrapping a function registered by name, metrics as nested lists and dicts.
The fuzz test builds `.keras` archives whose compile config and Lambda function are drawn from the
shapes `keras.saving.serialize_keras_object` produces and asserts `inspect` never fails with an
internal error (no TensorFlow, no Keras: the files are written with zipfile)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeltool.errors import ModelToolError
from modeltool.loaders import load
from modeltool.ops.summary import model_to_dict, render_summary

NAMES = st.sampled_from(["mse", "mean_squared_error", "Custom>my_loss", "accuracy", "keras.losses.MSE", ""])
#: the shapes of one serialized object, as Keras 3 writes them
SERIALIZED = st.recursive(
    st.one_of(st.none(), NAMES, st.integers(-3, 3), st.floats(allow_nan=False, width=32), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.fixed_dictionaries({"class_name": st.one_of(NAMES, st.just("function")), "config": inner},
                              optional={"module": st.one_of(st.none(), st.just("keras.losses"), st.just("builtins")),
                                        "registered_name": st.one_of(st.none(), NAMES)}),
        st.dictionaries(NAMES, inner, max_size=3),
    ),
    max_leaves=8,
)  # fmt: skip


def _archive(path, compile_config, lambda_function) -> None:
    layers = [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 3], "dtype": "float32",
         "name": "x"}, "registered_name": None, "name": "x", "inbound_nodes": []},
        {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "lam", "function": lambda_function,
         "arguments": {}}, "registered_name": None, "name": "lam",
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [None, 3],
                            "dtype": "float32", "keras_history": ["x", 0, 0]}}], "kwargs": {}}]},
    ]  # fmt: skip
    config = {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
              "config": {"name": "m", "layers": layers, "input_layers": [["x", 0, 0]],
                         "output_layers": [["lam", 0, 0]]},
              "compile_config": compile_config}  # fmt: skip
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))


def _inspect(path) -> str:
    model = load(str(path))
    json.dumps(model_to_dict(model), default=str)
    return render_summary(model)


def test_loss_by_plain_string_inside_the_serialized_dict(tmp_path):
    loss = {"module": "keras.losses", "class_name": "function", "config": "mean_squared_error",
            "registered_name": "mean_squared_error"}  # fmt: skip
    _archive(tmp_path / "m.keras", {"optimizer": "adam", "loss": loss, "metrics": ["mae"]}, None)
    assert "loss mean_squared_error" in _inspect(tmp_path / "m.keras")


def test_lambda_wrapping_a_registered_function(tmp_path):
    fn = {"module": "builtins", "class_name": "function", "config": "Custom>scale_by_two",
          "registered_name": "function"}  # fmt: skip
    _archive(tmp_path / "m.keras", None, fn)
    text = _inspect(tmp_path / "m.keras")
    assert "Lambda layer lam" in text
    detail = load(str(tmp_path / "m.keras"))
    from modeltool.ops.summary import lambda_info

    assert lambda_info(detail.graph.find("lam").config)["function_name"] == "Custom>scale_by_two"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(compile_config=st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "optimizer": SERIALIZED, "loss": SERIALIZED, "metrics": SERIALIZED, "loss_weights": SERIALIZED,
    "weighted_metrics": SERIALIZED})), function=SERIALIZED)  # fmt: skip
def test_config_readers_take_every_serialized_shape(tmp_path, compile_config, function):
    path = tmp_path / "f.keras"
    _archive(path, compile_config, function)
    try:
        _inspect(path)
    except ModelToolError:
        pass  # a clear "this file is unusable" is an answer; an AttributeError is a crash


def test_npz_keyed_by_tensor_name(tmp_path):
    """`X:0` in --input data.npz is input X, as --inputs accepts it."""
    from modeltool.feeds import npz_feed
    from modeltool.ir import TensorSpec

    np.savez(tmp_path / "d.npz", **{"X:0": np.ones((1, 3), "float32"), "keep_prob:0": np.float32(1.0)})
    feed = npz_feed(tmp_path / "d.npz", [TensorSpec("X", (None, 3), "float32"), TensorSpec("keep_prob", (), "float32")])
    assert feed["X"].shape == (1, 3) and float(feed["keep_prob"]) == 1.0


def test_subclassed_model_inputs_from_build_config():
    """A subclassed Keras 3 model has no layers in the file, but `build_config` holds the shape it was
    built with: inspect shows it as the input (Keras wrote `{"input_shape": [1, 5]}` for this fixture)."""
    from tests.conftest import FIXTURES

    model = load(str(FIXTURES / "keras3/subclassed.keras"))
    assert [(s.name, s.shape) for s in model.inputs] == [("input", (1, 5))]
    assert "input  (1, 5)" in render_summary(model)


def test_build_config_shapes():
    from modeltool.loaders.keras_common import build_config_inputs

    def names(shape):
        return [(s.name, s.shape) for s in build_config_inputs({"build_config": {"input_shape": shape}})]

    assert names([None, 8]) == [("input", (None, 8))]
    assert names([[None, 8], [None, 3]]) == [("input_0", (None, 8)), ("input_1", (None, 3))]
    assert names({"token_ids": [None, None], "mask": [None, None]}) == [("token_ids", (None, None)),
                                                                       ("mask", (None, None))]
    assert names(None) == [] and names("junk") == [] and names([["x"]]) == []
