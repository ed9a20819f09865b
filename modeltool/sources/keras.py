"""Keras files of every version (`.h5`, `.keras`, JSON/YAML + weights, checkpoints + architecture)
as a source: modeltool's Keras 3 rebuild is what every target is written from, and the reference is
the runtime that wrote the file (tf_keras for Keras 1/2 files, Keras 3 for Keras 3 files).

Every TF-based target is made from one `tf.function` (`serving_function`): named inputs in, named
outputs out, so ONNX graph inputs, TFLite SignatureDefs and SavedModel signature keys all carry the
names users know rather than `serving_default_input_1:0` or `unk__12`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modeltool.deps import require
from modeltool.errors import UsageError
from modeltool.formats import Format
from modeltool.ir import Model, TensorSpec
from modeltool.keras.calls import flat_outputs, pack_inputs
from modeltool.options import CompareOptions, ConvertOptions, Shape
from modeltool.runners.base import Runner
from modeltool.sources.base import ExportContext, OnnxGraph, Source

RNN_LAYERS = {"LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU"}


class KerasSource(Source):
    kind = "keras"
    build_step = "rebuild"

    def __init__(self, ir: Model, options: CompareOptions, *, unrolled_from: KerasSource | None = None) -> None:
        from modeltool.keras.rebuild import check_safe, model_objects

        super().__init__(ir, options)
        self.custom = model_objects(ir, options.custom_objects, options.trust)
        check_safe(ir, unsafe=options.unsafe, custom_objects=dict(self.custom))
        #: the source this one is the RNN-unrolled rebuild of (whose reference it keeps)
        self.unrolled_from = unrolled_from
        if unrolled_from is not None:
            self.notes = unrolled_from.notes
        self._native: Any = None
        self._direct_ir: Model | None = None

    @property
    def native(self) -> Any:
        """The Keras 3 model, built on first use (verification alone may never need it)."""
        if self._native is None:
            from modeltool.keras.rebuild import build

            shapes = self.options.input_shapes
            per_input = [shapes.get(s.name) for s in self.ir.graph.inputs] if shapes and self.ir.graph else None
            notes: list[str] = []
            unroll = self.unrolled_from is not None
            self._native = build(self.ir, custom_objects=self.custom, unsafe=self.options.unsafe, unroll_rnn=unroll,
                                 input_shapes=per_input, notes=notes)  # fmt: skip
            if self.options.unsafe:
                notes.append("--unsafe: Python code from the model file (Lambda layers) was run")
            self.notes += [n for n in notes if n not in self.notes]
        return self._native

    def direct_ir(self) -> Model:
        """The IR the direct ONNX route writes: the file's own graph, or for a model-library backbone
        (KerasHub) the functional graph of building blocks its class builds, with the weights Keras
        loaded (`keras/expand.py`; building it imports the library, as every target of it does)."""
        if self._direct_ir is None:
            from modeltool.keras.expand import is_library_model

            self._direct_ir = (self._expanded() if is_library_model(self.ir) else None) or self.ir
        return self._direct_ir

    def _expanded(self) -> Model | None:
        """The backbone built by Keras without weights (the library's code, the file's config), its
        weights then read from the file one at a time as the converters ask; where the file's
        layout does not match Keras's walk, the backbone as Keras loads it, weights and all."""
        from modeltool.keras.expand import expanded, library_shell
        from modeltool.loaders.keras_zip import weights_opener

        if self.ir.format == Format.KERAS_V3:
            found = expanded(self.ir, library_shell(self.ir, dict(self.custom)), weights_opener(self.path))
            if found is not None:
                return found
        return expanded(self.ir, self.native)

    def materialize(self) -> None:
        """Nothing yet: `prepared` builds the Keras model for the targets written from it. The direct
        ONNX route writes from the IR and never needs it (its verification builds the reference)."""

    # ---------------------------------------------------------------- boundary and reference

    def input_specs(self, shapes: dict[str, Shape] | None = None) -> list[TensorSpec]:
        return input_specs(self.native, self.ir, shapes or {})

    def output_names(self) -> list[str]:
        return boundary_names(self.native, self.ir)[1]

    def reference(self) -> Runner:
        from modeltool.runners.keras import keras_reference

        if self.unrolled_from is not None:
            return self.unrolled_from.reference()
        return keras_reference(self.ir, lambda: self.native, self.options.reference_mode, self.custom)

    # ---------------------------------------------------------------- targets

    def prepared(self, target: Any, options: ConvertOptions, context: ExportContext) -> Source:
        """TFLite builtin ops cannot express Keras 3's RNN while-loop over TensorLists: the model is
        rebuilt with `unroll=True`, a static loop of builtin ops, which needs fixed timesteps. Every
        target but ONNX and TFLite by their direct routes starts from the Keras model: built here (the
        rebuild step)."""
        via = getattr(options, "via", "auto")
        if target.value == "tflite" and (via == "direct" or (via == "auto" and self._lowered(options))):
            return self  # the direct TFLite route writes from the IR (it builds the model only if it falls back)
        if not (target.value == "onnx" and getattr(options, "via", "auto") != "tf"):
            if target.value in ("tflite", "savedmodel", "pb", "checkpoint"):
                require_tensorflow_backend(self.path, f"writing {target.value}")
            self.native  # noqa: B018 - builds it
        if target.value != "tflite" or options.allow_flex or not has_rnn(self.ir) or self.unrolled_from is not None:
            return self
        unrolled = KerasSource(self.ir, self.options, unrolled_from=self)
        try:
            serving_function(unrolled.native, self.ir, options.input_shapes).get_concrete_function()
        except Exception as exc:  # unrolling fails here on unknown timesteps
            names = [s.name for s in self.ir.graph.inputs] if self.ir.graph else ["input"]
            flags = " ".join(f"--input-shape {n}=1,T,F" for n in names)
            raise UsageError(
                f"{self.path}: TFLite builtin ops need the RNN layers unrolled, which needs a fixed number of "
                f"timesteps and the model leaves them open; pass {flags} or accept Select TF ops with --allow-flex"
            ) from exc
        context.warnings.append("RNN layers unrolled over their fixed timesteps to stay within TFLite builtin ops")
        return unrolled

    def _lowered(self, options: ConvertOptions) -> bool:
        """Every layer's class has a direct TFLite lowering (its configuration is checked when written),
        and recurrent layers have a known number of steps to be unrolled over."""
        from modeltool.keras.layers import lowered

        graph = self.ir.graph
        if graph is None or self.unrolled_from is not None or not graph.nodes:
            return False
        if has_rnn(self.ir):
            shapes = [options.input_shapes.get(s.name, s.shape) for s in graph.inputs]
            if any(s is None or any(d is None for d in s[1:]) for s in shapes):
                return False
        custom = {name.split(">")[-1] for name in self.custom}
        return all(node.op == "InputLayer" or (lowered(node.op) and node.op not in custom)
                   for _, node in graph.walk() if node.subgraph is None)  # fmt: skip

    def onnx_graph(self, options: ConvertOptions, detach_bytes: int) -> OnnxGraph:
        """The serving function with every variable over `detach_bytes` taken as an extra input (read
        through Keras's StatelessScope) and the small ones folded: tf2onnx copies every constant
        through its passes (~45x the weights), so the large ones never become constants."""
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        native = self.native
        large = large_variables(native, detach_bytes)
        with plain_grouped_convs():
            concrete = serving_function(native, self.ir, options.input_shapes, large).get_concrete_function()
        keys = sorted(concrete.structured_outputs)  # tf.nest flattens a dict in sorted-key order
        frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
        in_names, out_names = boundary_names(native, self.ir)
        placeholders = [t.name for t in frozen.inputs if t.dtype.name != "resource"]
        inputs, weights = placeholders[: len(in_names)], placeholders[len(in_names) :]
        by_key = dict(zip(keys, (t.name for t in frozen.outputs)))
        return OnnxGraph(frozen.graph.as_graph_def(), dict(zip(inputs, in_names)),
                         {by_key[k]: k for k in out_names}, dict(zip(weights, large)))  # fmt: skip

    def frozen(self, options: ConvertOptions) -> Any:
        from modeltool.tfgraph.native import Endpoint, FrozenGraph

        graph = self.onnx_graph(options, detach_bytes=1 << 62)
        specs = {s.name: s for s in self.input_specs(options.input_shapes)}
        ins = [Endpoint(t, n, specs[n].shape if n in specs else None, specs[n].dtype if n in specs else None)
               for t, n in graph.inputs.items()]  # fmt: skip
        return FrozenGraph(graph.graph_def, ins, [Endpoint(t, n) for t, n in graph.outputs.items()], self.path)

    def tflite_converter(self, options: ConvertOptions) -> Any:
        tf = require("tensorflow", "converting to TFLite")
        native = self.native
        concrete = serving_function(native, self.ir, options.input_shapes).get_concrete_function()
        # The converter freezes the variables it finds through `trackable_obj`; it must see the
        # tf.Variables under Keras 3's variables, or it keeps READ_VARIABLE ops whose values never arrive.
        holder = tf.Module()
        holder.variables_ = [getattr(v, "value", v) for v in native.variables]
        return tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)

    def write_saved_model(self, path: str, options: ConvertOptions) -> dict[str, Any]:
        """Keras's own ExportArchive: variables tracked, no Keras object pickled into the graph."""
        keras = require("keras", "exporting a SavedModel")
        tf = require("tensorflow", "exporting a SavedModel")
        native = self.native
        specs = self.input_specs(options.input_shapes)
        out_names = self.output_names()

        def serve(*args: Any) -> dict[str, Any]:
            return dict(zip(out_names, flat_outputs(native(pack_inputs(native, list(args)), training=False))))

        archive = keras.export.ExportArchive()
        archive.track(native)
        archive.add_endpoint(name="serving_default", fn=serve,
                             input_signature=[tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs])  # fmt: skip
        archive.write_out(path, verbose=False)
        return {"signature": "serving_default", "inputs": [s.name for s in specs], "outputs": out_names}

    def keras_model(self) -> Any:
        return self.native


# ---------------------------------------------------------------- the Keras model as a TF function


def require_tensorflow_backend(path: str, doing: str) -> None:
    """Targets written from a traced `tf.function` need Keras on TensorFlow: say so in one line
    when the user chose another backend (KERAS_BACKEND), instead of failing inside Keras."""
    from modeltool.deps import available, keras_backend

    if not available("tensorflow"):
        require("tensorflow", doing)  # the light install: says which extra installs it
    backend = keras_backend()
    if backend != "tensorflow":
        raise UsageError(f"{path}: {doing} traces the model with TensorFlow, but Keras runs on {backend} here "
                         f"(KERAS_BACKEND={backend}); unset KERAS_BACKEND or set it to tensorflow")  # fmt: skip


def has_rnn(model: Model) -> bool:
    """True when a recurrent layer (also inside Bidirectional/TimeDistributed) is in the model."""
    for _, node in model.graph.walk() if model.graph is not None else []:
        inner = node.config.get("layer") if isinstance(node.config, dict) else None
        inner_cls = inner.get("class_name") if isinstance(inner, dict) else None
        if node.op in RNN_LAYERS or inner_cls in RNN_LAYERS:
            return True
    return False


def boundary_names(native: Any, ir: Model | None) -> tuple[list[str], list[str]]:
    """(input names, output names) from the IR when it matches the Keras model, else Keras's."""
    from modeltool.keras.calls import keras_output_names
    from modeltool.runners.keras import keras_io

    specs, n_out = keras_io(native)
    ins = [s.name.split(":")[0] for s in specs]
    outs = keras_output_names(native) or [f"output_{i}" for i in range(n_out)]
    if ir is not None and ir.graph is not None:
        if len(ir.graph.inputs) == len(ins):
            ins = [s.name for s in ir.graph.inputs]
        if len(ir.graph.outputs) == len(outs):
            outs = [s.name for s in ir.graph.outputs]
    return [_tf_name(n) for n in ins], [_tf_name(n) for n in outs]


def ir_boundary_names(ir: Model) -> tuple[list[str], list[str]]:
    """(input names, output names) from the IR alone, cleaned as `boundary_names` cleans them: what
    the direct ONNX route names the graph's boundary without building the Keras model."""
    graph = ir.graph
    ins = [s.name for s in graph.inputs] if graph is not None else []
    outs = [s.name for s in graph.outputs] if graph is not None else []
    return [_tf_name(n) for n in ins], [_tf_name(n) for n in outs]


def _tf_name(name: str) -> str:
    """TF op names allow [A-Za-z0-9_.\\-/>]; anything else becomes `_`."""
    clean = re.sub(r"[^A-Za-z0-9_.\-/>]", "_", name)
    return clean if re.match(r"[A-Za-z0-9.]", clean) else f"x{clean}"


def input_specs(native: Any, ir: Model | None, shapes: dict[str, Shape]) -> list[TensorSpec]:
    """The serving inputs: names, shapes (batch dynamic unless fixed by --input-shape) and dtypes."""
    from modeltool.runners.keras import keras_io

    names, _ = boundary_names(native, ir)
    unknown = set(shapes) - set(names)
    if unknown:
        raise UsageError(f"--input-shape: no input named {', '.join(sorted(unknown))}; inputs: {', '.join(names)}")
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
    native: Any, ir: Model | None, shapes: dict[str, Shape] | None = None, weights: list[Any] | tuple = ()
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
            out = native(pack_inputs(native, list(xs)), training=False)
        return dict(zip(out_names, flat_outputs(out)))

    return serve


def large_variables(native: Any, limit: int) -> list[Any]:
    """The model's variables over `limit` bytes, each once (shared layers share variables)."""
    import numpy as np

    seen, out = set(), []
    for v in native.weights:
        size = int(np.prod(v.shape)) * np.dtype(str(v.dtype)).itemsize
        if size > limit and id(v) not in seen:
            seen.add(id(v))
            out.append(v)
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
