"""Core layers: inputs, pass-through layers, Dense, Embedding, reshaping, and Keras operations
recorded as layers."""

from __future__ import annotations

import math

from modeltool.keras.layers.spec import Family, LayerInfo, WeightSpec, first

family = Family("core")


@family.declare("InputLayer")
def _input(cfg, shapes):
    shape = cfg.get("batch_shape")
    return LayerInfo([tuple(shape) if shape is not None else first(shapes)])


@family.declare(
    "Dropout",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
    "SpatialDropout1D",
    onnx="core:identity_layer",
    mask=True,
    tflite="core:identity_layer",
)
@family.declare(
    "SpatialDropout2D",
    "SpatialDropout3D",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomContrast",
    "RandomBrightness",
    "RandomTranslation",
    onnx="core:identity_layer",
    tflite="core:identity_layer",
)
@family.declare("Masking", onnx="core:masking", tflite="core:masking")
@family.declare("Rescaling", onnx="core:rescaling", mask=True, tflite="core:rescaling")
@family.declare("Layer", "TFOpLambda")
def identity(cfg, shapes):
    """What passes its input through unchanged in shape (inference-time no-ops, scalings, masks)."""
    return LayerInfo([first(shapes)])


@family.declare("Dense", onnx="core:dense", mask=True, tflite="core:dense")
def _dense(cfg, shapes):
    s = first(shapes)
    units = cfg["units"]
    in_dim = s[-1] if s is not None else None
    w = [WeightSpec("kernel", (in_dim, units), k3=("", 0))]
    if cfg.get("use_bias", True):
        w.append(WeightSpec("bias", (units,), k3=("", 1)))
    return LayerInfo([None if s is None else (*s[:-1], units)], w)


@family.declare("Embedding", onnx="core:embedding", tflite="core:embedding")
def _embedding(cfg, shapes):
    s = first(shapes)
    if s is None and cfg.get("input_length") is not None:
        s = (None, cfg["input_length"])
    out = None if s is None else (*s, cfg["output_dim"])
    return LayerInfo([out], [WeightSpec("embeddings", (cfg["input_dim"], cfg["output_dim"]))])


@family.declare("Flatten", onnx="core:flatten", tflite="core:flatten")
def _flatten(cfg, shapes):
    s = first(shapes)
    rest = s[1:]
    n = None if any(d is None for d in rest) else int(math.prod(rest))
    return LayerInfo([(s[0], n)])


@family.declare("Reshape", onnx="core:reshape", tflite="core:reshape")
def _reshape(cfg, shapes):
    s = first(shapes)
    target = list(cfg["target_shape"])
    if -1 in target:
        known = [d for d in s[1:]]
        if any(d is None for d in known):
            target = [None if t == -1 else t for t in target]
        else:
            rest = math.prod(t for t in target if t != -1)
            target = [math.prod(known) // rest if t == -1 else t for t in target]
    return LayerInfo([(s[0], *target)])


@family.declare("Permute", onnx="core:permute", tflite="core:permute")
def _permute(cfg, shapes):
    s = first(shapes)
    return LayerInfo([(s[0], *(s[d] for d in cfg["dims"]))])


@family.declare("RepeatVector", onnx="core:repeat_vector", tflite="core:repeat_vector")
def _repeat(cfg, shapes):
    s = first(shapes)
    return LayerInfo([(s[0], cfg["n"], s[1])])


@family.declare("ReversibleEmbedding", onnx="core:reversible_embedding")
def _reversible_embedding(cfg, shapes):
    """An Embedding whose table (or a second one, `tie_weights=False`) also maps features back to
    logits when called with `reverse=True` (KerasHub's language-model heads)."""
    info = _embedding(cfg, shapes)
    if cfg.get("tie_weights", True) is False:
        info.weights.append(WeightSpec("reverse_embeddings", (cfg["output_dim"], cfg["input_dim"]), k3=("", 1)))
    return info


# classes whose shapes the config reader does not size (their converters read what they need)
family.add("LayerScale", onnx="core:layer_scale", tflite="core:layer_scale")
family.add("CustomScaleLayer", onnx="core:custom_scale", tflite="core:custom_scale")
#: keras.ops operations recorded as layers in functional configs (`x + 3.0`), keyed `ops.<Class>`
KERAS_OPS = (
    "Add Subtract Multiply Divide TrueDivide Maximum Minimum Power Negative Abs Sqrt Exp Log Tanh Sigmoid "
    "Relu Square Equal NotEqual Greater GreaterEqual Less LessEqual LogicalAnd LogicalOr"
).split()
#: those the direct TFLite route lowers
LOWERED_OPS = tuple("Add Subtract Multiply Divide TrueDivide Maximum Minimum Power Negative Abs Sqrt Exp Log Tanh "
                    "Sigmoid Relu Square Equal NotEqual Greater GreaterEqual Less LessEqual LogicalAnd "
                    "LogicalOr".split())  # fmt: skip
family.add(*(f"ops.{name}" for name in KERAS_OPS if name not in LOWERED_OPS), onnx="core:keras_op")
family.add(*(f"ops.{name}" for name in LOWERED_OPS), onnx="core:keras_op", tflite="core:keras_op")
family.add("ops.Any", "ops.All", onnx="core:keras_reduction", tflite="core:keras_reduction")
family.add("ops.GetItem", onnx="core:get_item", tflite="core:get_item")
