"""The writer's own runtime for Keras 1/2 files: a tf_keras (Keras 2) model, the reference that
`convert` and `verify` compare against.

A Keras 3 rebuild is modeltool's reinterpretation of the file; when it computes other numbers than
the Keras that wrote the file, comparing the converted model with the rebuild proves nothing. For
files written by Keras 2 (tf.keras, tf_keras) the reference is therefore Keras 2 itself. tf_keras is
never handed the file (its H5 loader unmarshals Lambda bytecode): it builds the model from the
config modeltool read and checked (`check_safe`), and modeltool sets the weights. Keras 1 files
have no runtime of their own; their config is normalized to Keras 2 spellings first, which keeps
their semantics (Keras 1 and 2 share e.g. the hard sigmoid).
"""

from __future__ import annotations

import copy
from typing import Any

from modeltool.deps import available, require
from modeltool.errors import LoadError
from modeltool.ir import Model
from modeltool.keras.graph import is_model_class
from modeltool.keras.legacy import normalize_layer
from modeltool.keras.semantics import writer_generation

CUDNN_CLASSES = ("CuDNNLSTM", "CuDNNGRU")
#: initializer config keys a Keras 2.2.4-tf file writes (Keras 3 refuses them; they never change inference)
INITIALIZER_ONLY_KEYS = ("dtype",)


def writer_unavailable(model: Model, custom_objects: dict[str, Any] | None = None) -> str | None:
    """Why the writer's runtime cannot compute this file's reference, or None when it can."""
    generation = writer_generation(model)
    if generation >= 3:
        return "written by Keras 3: the rebuild is Keras 3 itself"
    if not available("tf_keras"):
        return ("tf_keras (the Keras 2 runtime) is not installed: the Keras 3 rebuild stands in, with the Keras 1/2 "
                "meanings modeltool keeps (docs/keras-semantics.md); pip install tf-keras for the writer's own numbers")
    for path, node in model.graph.walk() if model.graph is not None else []:
        if "lambda" in node.flags:
            return f"layer {path!r} is a Lambda: tf_keras would run the file's bytecode"
        if "custom" in node.flags:
            return f"layer {path!r} is of custom class {node.op!r} (a --custom-objects module is written for Keras 3)"
        if node.op in CUDNN_CLASSES:
            return f"layer {path!r} is a {node.op}, which tf_keras runs only on a GPU"
    from modeltool.keras.rebuild import needs_weights

    if model.config is None or (not model.weights and needs_weights(model)):
        return "no architecture or no weights to build from"
    return None


def tf_keras_config(model: Model) -> dict:
    """The model config as tf_keras deserializes it: the file's own Keras 2 config, or for Keras 1
    files every layer normalized and spelled the Keras 2 way."""
    cfg = copy.deepcopy(model.config)
    cfg.pop("keras_version", None)
    cfg.pop("backend", None)
    if cfg.get("class_name") == "Functional":
        cfg["class_name"] = "Model"
    keras1 = writer_generation(model) == 1
    _walk(cfg, keras1)
    return cfg


def _walk(entry: dict, keras1: bool) -> None:
    inner = entry.get("config")
    layers = inner if isinstance(inner, list) else inner.get("layers", []) if isinstance(inner, dict) else []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            continue
        if is_model_class(layer.get("class_name", "")):
            _walk(layer, keras1)
            continue
        if keras1:
            layer = normalize_layer(layer)
            _keras2_spelling(layer)
        _strip_initializer_keys(layer.get("config"))
        for key in ("layer", "backward_layer"):
            wrapped = (layer.get("config") or {}).get(key)
            if isinstance(wrapped, dict) and "class_name" in wrapped:
                _strip_initializer_keys(wrapped.get("config"))
        layers[i] = layer


def _keras2_spelling(layer: dict) -> None:
    """normalize_layer speaks Keras 3 (`batch_shape`); tf_keras says `batch_input_shape`."""
    cfg = layer["config"]
    if "batch_shape" in cfg:
        cfg["batch_input_shape"] = cfg.pop("batch_shape")
    # Keras 1's dtype of a first layer's implicit input; in Keras 2 `dtype` would be the layer's own
    # (an int32 Embedding table), and Keras 2 layers cast their inputs themselves
    cfg.pop("input_dtype", None)


def _strip_initializer_keys(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_initializer") and isinstance(item, dict) and isinstance(item.get("config"), dict):
                for drop in INITIALIZER_ONLY_KEYS:
                    item["config"].pop(drop, None)


def build_tf_keras(model: Model) -> Any:
    """A tf_keras model with the file's architecture and weights. Call `writer_unavailable` first."""
    from modeltool.keras.rebuild import set_weights

    tf_keras = require("tf_keras", "computing the reference in the Keras 2 runtime that wrote the file")
    cfg = tf_keras_config(model)
    try:
        native = tf_keras.models.model_from_config(cfg)
    except Exception as exc:  # noqa: BLE001 - tf_keras raises anything on a config it does not take
        raise LoadError(f"{model.path}: tf_keras cannot build this architecture ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:300]})") from exc  # fmt: skip
    set_weights(native, model.weights, model.path)
    return native


def runtime_label() -> str:
    """'tf_keras 2.21.0' for reports."""
    return f"tf_keras {require('tf_keras').__version__}"
