"""Keras 1/2 config spellings, normalized to the Keras 3 vocabulary at the loader edge.

Everything downstream sees one config dialect: `batch_shape`, `units`, `filters`, `kernel_size`,
`padding`, `data_format`, Keras 3 class names, and dtype policies as plain strings. Each pass below
does one rewrite on one layer config and is safe on configs that are already Keras 3; they run in
the order of `LAYER_PASSES`. Keras 1 layers are recognised by their keys, not by a version number,
since many Keras 2 files still carry Keras 1 layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LayerConfig = dict[str, Any]  # {"class_name": ..., "config": {...}, ...}

CLASS_RENAMES = {
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "Convolution3D": "Conv3D",
    "AtrousConvolution1D": "Conv1D",
    "AtrousConvolution2D": "Conv2D",
    "Deconvolution2D": "Conv2DTranspose",
    "Deconvolution3D": "Conv3DTranspose",
    "SeparableConvolution2D": "SeparableConv2D",
    "Model": "Functional",
}

#: Keras 1 argument -> Keras 2/3 argument (layer-specific ones are handled in the passes)
ARG_RENAMES = {
    "nb_filter": "filters",
    "border_mode": "padding",
    "subsample": "strides",
    "subsample_length": "strides",
    "filter_length": "kernel_size",
    "pool_length": "pool_size",
    "inner_init": "recurrent_initializer",
    "W_regularizer": "kernel_regularizer",
    "b_regularizer": "bias_regularizer",
    "U_regularizer": "recurrent_regularizer",
    "W_constraint": "kernel_constraint",
    "b_constraint": "bias_constraint",
    "U_constraint": "recurrent_constraint",
    "bias": "use_bias",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "inner_activation": "recurrent_activation",
    "atrous_rate": "dilation_rate",
    "beta_init": "beta_initializer",
    "gamma_init": "gamma_initializer",
}
EMBEDDING_RENAMES = {
    "init": "embeddings_initializer",
    "W_regularizer": "embeddings_regularizer",
    "W_constraint": "embeddings_constraint",
}
KERAS1_MARKERS = {
    "nb_filter", "border_mode", "subsample", "subsample_length", "filter_length", "pool_length",
    "init", "inner_init", "W_regularizer", "W_constraint", "b_regularizer", "input_dtype",
    "dim_ordering", "output_dim", "nb_row", "dropout_W", "consume_less", "p", "stride",
}  # fmt: skip
DROPPED_KEYS = {"consume_less", "mode", "forget_bias_init", "input_dim", "input_length", "cache_enabled"}
MERGE_MODES = {
    "sum": "Add",
    "mul": "Multiply",
    "ave": "Average",
    "max": "Maximum",
    "concat": "Concatenate",
    "dot": "Dot",
    "cos": "Dot",
}


def is_keras1_layer(class_name: str, cfg: dict) -> bool:
    keys = set(cfg)
    if class_name == "Embedding":
        keys -= {"output_dim", "input_dim", "input_length"}
    if class_name not in ("Dropout", "SpatialDropout1D", "SpatialDropout2D"):
        keys.discard("p")
    return bool(keys & KERAS1_MARKERS) or class_name in CLASS_RENAMES or class_name == "Merge"


# ---------------------------------------------------------------- passes over one layer config


def pass_dtype_policy(layer: LayerConfig) -> None:
    """Keras 3 `{"class_name": "DTypePolicy", "config": {"name": ...}}` -> "float32"."""
    cfg = layer["config"]
    dtype = cfg.get("dtype")
    if isinstance(dtype, dict):
        cfg["dtype"] = dtype.get("config", {}).get("name", dtype.get("class_name"))


def pass_batch_shape(layer: LayerConfig) -> None:
    """`batch_input_shape` (Keras 1/2) and `input_shape` become Keras 3's `batch_shape`."""
    cfg = layer["config"]
    if "batch_input_shape" in cfg and "batch_shape" not in cfg:
        cfg["batch_shape"] = cfg.pop("batch_input_shape")
    elif "input_shape" in cfg and "batch_shape" not in cfg and cfg["input_shape"] is not None:
        cfg["batch_shape"] = [None, *cfg.pop("input_shape")]
    if cfg.get("batch_shape") is not None:
        cfg["batch_shape"] = [None if d is None else int(d) for d in cfg["batch_shape"]]


def pass_keras1_shape_args(layer: LayerConfig) -> None:
    """Keras 1 first layers give `input_dim`/`input_length` instead of a batch shape."""
    cls, cfg = layer["class_name"], layer["config"]
    if cfg.get("batch_shape") is not None or cfg.get("batch_input_shape") is not None:
        return
    dim, length = cfg.get("input_dim"), cfg.get("input_length")
    if cls == "Embedding":
        if length is not None:
            cfg["batch_shape"] = [None, length]
    elif dim is not None and cls in ("Dense",):
        cfg["batch_shape"] = [None, dim]
    elif dim is not None and cls in ("LSTM", "GRU", "SimpleRNN", "Conv1D", "Convolution1D"):
        cfg["batch_shape"] = [None, length, dim]


def pass_keras1_merge(layer: LayerConfig) -> None:
    """Keras 1 `Merge(mode=...)` becomes the Keras 2+ merge layer of that mode."""
    if layer["class_name"] != "Merge":
        return
    cfg = layer["config"]
    mode = cfg.get("mode", "sum")
    if not isinstance(mode, str) or mode not in MERGE_MODES:
        return  # a Python-function mode: stays unknown
    layer["class_name"] = MERGE_MODES[mode]
    if mode == "concat":
        cfg["axis"] = cfg.pop("concat_axis", -1)
    elif mode in ("dot", "cos"):
        cfg["axes"] = cfg.pop("dot_axes", -1)
        cfg["normalize"] = mode == "cos"
    for key in ("mode", "concat_axis", "dot_axes", "mode_type", "output_shape", "output_shape_type",
                "output_mask", "output_mask_type", "arguments"):  # fmt: skip
        cfg.pop(key, None)


def pass_keras1_args(layer: LayerConfig) -> None:
    """Keras 1 argument names and values (output_dim, nb_filter, dim_ordering='th', ...)."""
    cls, cfg = layer["class_name"], layer["config"]
    if not is_keras1_layer(cls, cfg):
        return
    layer["class_name"] = cls = CLASS_RENAMES.get(cls, cls)
    if cls == "Embedding":
        for old, new in EMBEDDING_RENAMES.items():
            if old in cfg:
                cfg.setdefault(new, cfg.pop(old))
        cfg.pop("dropout", None)
    elif "output_dim" in cfg:
        cfg.setdefault("units", cfg.pop("output_dim"))
    if "init" in cfg:
        cfg.setdefault("kernel_initializer", cfg.pop("init"))
    for old, new in ARG_RENAMES.items():
        if old in cfg:
            value = cfg.pop(old)
            cfg.setdefault(new, value)
    if "nb_row" in cfg:
        cfg["kernel_size"] = [cfg.pop("nb_row"), cfg.pop("nb_col")]
    if "kernel_dim1" in cfg:
        cfg["kernel_size"] = [cfg.pop("kernel_dim1"), cfg.pop("kernel_dim2"), cfg.pop("kernel_dim3")]
    if "stride" in cfg:
        cfg.setdefault("strides", cfg.pop("stride"))
    if "p" in cfg and cls in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"):
        cfg["rate"] = cfg.pop("p")
    if cls == "UpSampling1D" and "length" in cfg:
        cfg["size"] = cfg.pop("length")
    if "dim_ordering" in cfg:
        order = cfg.pop("dim_ordering")
        cfg["data_format"] = "channels_first" if order == "th" else "channels_last"
    for key in DROPPED_KEYS:
        if key in cfg and not (cls == "Embedding" and key in ("input_dim", "input_length")):
            cfg.pop(key)


def pass_gru_reset_after(layer: LayerConfig) -> None:
    """Keras before 2.3 had no `reset_after`; its GRU is reset_after=False (one bias row)."""
    if layer["class_name"] in ("GRU",) and "reset_after" not in layer["config"]:
        layer["config"]["reset_after"] = False


def pass_batchnorm_axis(layer: LayerConfig) -> None:
    """tf.keras 2 writes `BatchNormalization(axis=[3])`; Keras 3 takes one int."""
    cfg = layer["config"]
    if layer["class_name"] == "BatchNormalization" and isinstance(cfg.get("axis"), list) and len(cfg["axis"]) == 1:
        cfg["axis"] = int(cfg["axis"][0])


#: Keras 2 argument names Keras 3 renamed, per layer class
KERAS2_ARG_RENAMES = {"LeakyReLU": {"alpha": "negative_slope"}}
_SEPARABLE_ONLY = ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint")
#: arguments tf.keras 2 writes that Keras 3 layers refuse (found by instantiating each class); a
#: static table so that configs written without TensorFlow (transfer-weights) load in Keras 3
KERAS2_ONLY_ARGS: dict[str, tuple[str, ...]] = {
    "Conv1DTranspose": ("groups",), "Conv2DTranspose": ("groups",), "Conv3DTranspose": ("groups",),
    "DepthwiseConv1D": ("groups",), "DepthwiseConv2D": ("groups",),
    "SeparableConv1D": _SEPARABLE_ONLY, "SeparableConv2D": _SEPARABLE_ONLY,
    "LSTM": ("time_major",), "GRU": ("time_major",), "SimpleRNN": ("time_major",),
    "ConvLSTM1D": ("time_major",), "ConvLSTM2D": ("time_major",), "ConvLSTM3D": ("time_major",),
    "SpatialDropout1D": ("noise_shape",), "SpatialDropout2D": ("noise_shape",), "SpatialDropout3D": ("noise_shape",),
    "MultiHeadAttention": ("query_shape", "key_shape", "value_shape", "softmax_robust_masking"),
}  # fmt: skip


def pass_keras2_renames(layer: LayerConfig) -> None:
    """Keras 2's `LeakyReLU(alpha=...)` is Keras 3's `negative_slope` (same meaning); arguments
    Keras 3 does not take are dropped when they hold their only meaningful Keras 2 value."""
    cfg = layer["config"]
    for old, new in KERAS2_ARG_RENAMES.get(layer["class_name"], {}).items():
        if old in cfg and new not in cfg:
            cfg[new] = cfg.pop(old)
    for key in KERAS2_ONLY_ARGS.get(layer["class_name"], ()):
        if key in cfg and (key != "groups" or cfg[key] in (1, None)):
            cfg.pop(key)


def pass_wrapped_layers(layer: LayerConfig) -> None:
    """Wrappers (Bidirectional, TimeDistributed) hold layer configs: normalize those too."""
    cfg = layer["config"]
    for key in ("layer", "backward_layer"):
        inner = cfg.get(key)
        if isinstance(inner, dict) and "class_name" in inner:
            inner.setdefault("config", {})
            normalize_layer(inner)


def pass_initializer_dtype(layer: LayerConfig) -> None:
    """tf.keras 2.2.4-tf wrote `dtype` into initializer configs (`VarianceScaling(dtype=...)`);
    later Keras refuses it, and it never changed a loaded weight."""
    for key, value in layer["config"].items():
        if key.endswith("_initializer") and isinstance(value, dict) and isinstance(value.get("config"), dict):
            value["config"].pop("dtype", None)


LAYER_PASSES: list[Callable[[LayerConfig], None]] = [
    pass_initializer_dtype,
    pass_dtype_policy,
    pass_keras1_merge,
    pass_keras1_shape_args,
    pass_keras1_args,
    pass_batch_shape,
    pass_gru_reset_after,
    pass_batchnorm_axis,
    pass_keras2_renames,
    pass_wrapped_layers,
]


def normalize_layer(layer: LayerConfig) -> LayerConfig:
    """Run every pass on one layer config (in place) and return it."""
    if not isinstance(layer.get("config"), dict):
        layer["config"] = {} if layer.get("config") is None else {"value": layer["config"]}
    layer["class_name"] = CLASS_RENAMES.get(layer["class_name"], layer["class_name"])
    for fn in LAYER_PASSES:
        fn(layer)
    return layer
