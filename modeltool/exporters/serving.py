"""The one TF function every TF-based target is made from: named inputs in, named outputs out.

Input names are the source model's input names, output names its output layer names (what
`inspect` shows), so ONNX graph inputs, TFLite SignatureDefs and SavedModel signature keys all
carry the names users know rather than `serving_default_input_1:0` or `unk__12`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from modeltool.deps import require
from modeltool.errors import UsageError
from modeltool.ir import Model, TensorSpec


@dataclass
class ExportOptions:
    """Everything a target may need; each exporter reads its own fields."""

    opset: int | None = None
    input_shapes: dict[str, tuple] = field(default_factory=dict)
    quantize: str | None = None  # float16 | dynamic | int8 (TFLite)
    calibration: str | None = None  # .npz for int8
    allow_flex: bool = False
    device: str = "cpu"
    #: ONNX: constants larger than this are kept out of tf2onnx and attached afterwards
    detach_bytes: int = 1 << 16
    #: ONNX: weights from this size on go to `<name>.onnx.data` (protobuf cannot exceed 2 GB)
    external_data_bytes: int = (1 << 31) - (64 << 20)
    seed: int = 0
    final_path: str | None = None  # where the output lands (exporters write to a temporary sibling)
    warnings: list[str] = field(default_factory=list)


def boundary_names(native: Any, ir: Model | None) -> tuple[list[str], list[str]]:
    """(input names, output names) from the IR when it matches the Keras model, else Keras's."""
    from modeltool.runners.keras import keras_io

    specs, n_out = keras_io(native)
    ins = [s.name.split(":")[0] for s in specs]
    outs = [f"output_{i}" for i in range(n_out)]
    if ir is not None and ir.graph is not None:
        if len(ir.graph.inputs) == len(ins):
            ins = [s.name for s in ir.graph.inputs]
        if len(ir.graph.outputs) == len(outs):
            outs = [s.name for s in ir.graph.outputs]
    return [_tf_name(n) for n in ins], [_tf_name(n) for n in outs]


def _tf_name(name: str) -> str:
    """TF op names allow [A-Za-z0-9_.\\-/>]; anything else becomes `_`."""
    clean = re.sub(r"[^A-Za-z0-9_.\-/>]", "_", name)
    return clean if re.match(r"[A-Za-z0-9.]", clean) else f"x{clean}"


def input_specs(native: Any, ir: Model | None, shapes: dict[str, tuple]) -> list[TensorSpec]:
    """The serving inputs: names, shapes (batch dynamic unless fixed by --input-shape) and dtypes."""
    names, _ = boundary_names(native, ir)
    unknown = set(shapes) - set(names)
    if unknown:
        raise UsageError(f"--input-shape: no input named {', '.join(sorted(unknown))}; inputs: {', '.join(names)}")
    from modeltool.runners.keras import keras_io

    specs = []
    for name, t in zip(names, keras_io(native)[0]):
        shape = tuple(t.shape)
        if name in shapes:
            given = tuple(shapes[name])
            if len(given) != len(shape):
                raise UsageError(
                    f"--input-shape {name}: rank {len(given)} given, the model input has rank {len(shape)} {shape}"
                )
            shape = given
        specs.append(TensorSpec(name, shape, t.dtype))
    return specs


def serving_function(
    native: Any, ir: Model | None, shapes: dict[str, tuple] | None = None, weights: list[Any] | tuple = ()
) -> Any:
    """A `tf.function` with a named input signature returning `{output name: tensor}`.

    `weights` (Keras variables) become extra trailing inputs that the model reads instead of the
    variables (Keras's `StatelessScope`), so they stay out of a frozen graph."""
    tf = require("tensorflow", "exporting TensorFlow graphs")
    keras = require("keras")
    specs = input_specs(native, ir, shapes or {})
    _, out_names = boundary_names(native, ir)
    signature = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs]
    signature += [tf.TensorSpec(tuple(w.shape), str(w.dtype), name=f"modeltool_w{i}") for i, w in enumerate(weights)]
    n_inputs = len(specs)

    @tf.function(input_signature=signature)
    def serve(*args: Any) -> dict[str, Any]:
        xs, values = args[:n_inputs], args[n_inputs:]
        with keras.StatelessScope(state_mapping=list(zip(weights, values))):
            out = native(list(xs) if len(xs) > 1 else xs[0], training=False)
        outs = list(out.values()) if isinstance(out, dict) else (list(out) if isinstance(out, (list, tuple)) else [out])
        return dict(zip(out_names, outs))

    return serve


def parse_shapes(values: tuple[str, ...] | list[str]) -> dict[str, tuple]:
    """`NAME:1,224,224,3` (or `NAME:?,224,224,3` for a dynamic dim) -> {NAME: (1, 224, 224, 3)}."""
    out: dict[str, tuple] = {}
    for value in values:
        name, sep, dims = value.rpartition(":")
        if not sep or not name or not dims:
            raise UsageError(f"--input-shape {value!r}: expected NAME:D1,D2,... (e.g. input_1:1,224,224,3)")
        try:
            out[name] = tuple(None if d.strip() in ("?", "-1", "None", "") else int(d) for d in dims.split(","))
        except ValueError as exc:
            raise UsageError(f"--input-shape {value!r}: dimensions must be integers or ?") from exc
    return out


@contextmanager
def plain_grouped_convs() -> Iterator[None]:
    """While tracing for ONNX: Keras's TF backend wraps grouped convolutions in an XLA-compiled
    inner function (TF has no CPU kernel for them), which tf2onnx leaves as an opaque
    StatefulPartitionedCall. Trace them as plain Conv2D ops instead (never run here); the ONNX
    pass `fix_grouped_convs` then sets their `group`."""
    require("tensorflow")
    from keras.src.backend.tensorflow import nn as tf_nn

    original = tf_nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):  # noqa: ANN001, ANN202
        tf = require("tensorflow")
        fmt = tf_nn._convert_data_format(tf_nn.backend.standardize_data_format(data_format), len(inputs.shape))
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format=fmt, dilations=dilation_rate)

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = original
