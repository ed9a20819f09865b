"""Targets written from a TF graph source (SavedModel signature, frozen `.pb`, TF1 checkpoint).

The source is a `FrozenGraph`: one GraphDef with constants and a named boundary. ONNX goes through
tf2onnx's `from_graph_def` and the same passes and validation as Keras sources; TFLite through the
converter (from the SavedModel itself when there is one, so its signature survives); SavedModel as
a `serving_default` over the graph; `.pb` as the frozen graph with outputs named.
"""

from __future__ import annotations

from typing import Any

from modeltool.deps import require
from modeltool.exporters import onnx_passes
from modeltool.exporters.serving import ExportOptions
from modeltool.ir import Model
from modeltool.tfgraph.native import FrozenGraph, named_graph_def, wrapped_function


def _shapes(fg: FrozenGraph, options: ExportOptions) -> dict[str, tuple | None]:
    """{input name: shape}: the user's --input-shape over the source's own."""
    from modeltool.errors import UsageError

    unknown = set(options.input_shapes) - {e.name for e in fg.inputs}
    if unknown:
        names = ", ".join(e.name for e in fg.inputs)
        raise UsageError(f"--input-shape: no input named {', '.join(sorted(unknown))}; inputs: {names}")
    return {e.name: options.input_shapes.get(e.name, e.shape) for e in fg.inputs}


class _ConstValue:
    """A detached constant's value, read from the GraphDef's bytes only when attached."""

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def numpy(self) -> Any:
        import numpy as np

        from modeltool.tfgraph.protos import dtype_name

        dims = [d.size for d in self.tensor.tensor_shape.dim]
        return np.frombuffer(self.tensor.tensor_content, dtype=dtype_name(self.tensor.dtype)).reshape(dims)


def detach_constants(graph_def: Any, limit: int) -> tuple[Any, dict[str, _ConstValue]]:
    """A copy of the graph whose float constants over `limit` bytes are Placeholders, and their
    values by tensor name: tf2onnx then converts a light graph (it copies every constant through its
    passes, ~45x the weights) and the values are attached as initializers afterwards, as for Keras
    sources. Constants stay where they are in the source graph (the reference still runs it)."""
    tf = require("tensorflow")
    light = tf.compat.v1.GraphDef()
    light.versions.CopyFrom(graph_def.versions)
    light.library.CopyFrom(graph_def.library)
    detached: dict[str, _ConstValue] = {}
    for node in graph_def.node:
        value = node.attr["value"].tensor if node.op == "Const" and "value" in node.attr else None
        if value is not None and len(value.tensor_content) > limit and value.dtype in (1, 2, 19):  # f32 f64 f16
            placeholder = light.node.add(name=node.name, op="Placeholder")
            placeholder.attr["dtype"].type = value.dtype
            placeholder.attr["shape"].shape.CopyFrom(value.tensor_shape)
            detached[f"{node.name}:0"] = _ConstValue(value)
        else:
            light.node.add().CopyFrom(node)
    return light, detached


def to_onnx(fg: FrozenGraph, ir: Model | None, path: str, options: ExportOptions) -> dict[str, Any]:
    from modeltool.errors import UnsupportedError
    from modeltool.exporters.onnx import checked_opset, run_tf2onnx, save, validate

    onnx = require("onnx", "converting to ONNX")
    opset = checked_opset(options)
    shapes = _shapes(fg, options)
    override = {e.tensor: list(shapes[e.name]) for e in fg.inputs if e.name in options.input_shapes}
    ins, outs = [e.tensor for e in fg.inputs], [e.tensor for e in fg.outputs]
    light, detached = detach_constants(fg.graph_def, options.detach_bytes)
    try:
        proto = run_tf2onnx(light, ins + list(detached), outs, opset, shape_override=override or None)
    except UnsupportedError:
        if not detached:
            raise
        # a large constant that an op needs at conversion time: convert the whole graph instead
        detached = {}
        proto = run_tf2onnx(fg.graph_def, ins, outs, opset, shape_override=override or None)
    del light
    fixes = onnx_passes.run_all(proto, detached, {e.tensor: e.name for e in fg.inputs},
                                {e.tensor: e.name for e in fg.outputs})  # fmt: skip
    weight_bytes = sum(len(t.raw_data) for t in proto.graph.initializer)
    save(onnx, proto, path, weight_bytes >= options.external_data_bytes, options.final_path or path)
    nodes, ops = len(proto.graph.node), sorted({n.op_type for n in proto.graph.node})
    del proto
    validate(path)
    return {"opset": opset, "nodes": nodes, "op_types": ops, "fixes": fixes}


def to_tflite(fg: FrozenGraph, ir: Model | None, path: str, options: ExportOptions) -> dict[str, Any]:
    from modeltool.exporters.tflite import convert_with

    tf = require("tensorflow", "converting to TFLite")
    shapes = _shapes(fg, options)
    if fg.saved_model is not None and not options.input_shapes:
        sm_path, signature = fg.saved_model
        converter = tf.lite.TFLiteConverter.from_saved_model(sm_path, signature_keys=[signature])
    else:
        fn = wrapped_function(fg)
        specs = [tf.TensorSpec(_static(shapes[e.name]), e.dtype or "float32", name=e.name) for e in fg.inputs]
        names = [e.name for e in fg.outputs]

        @tf.function(input_signature=specs)
        def serve(*args: Any) -> dict[str, Any]:
            return dict(zip(names, fn(*args)))

        converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], tf.Module())
    return convert_with(tf, converter, path, options, lambda: _calibration(fg, ir, options))


def _static(shape: tuple | None) -> Any:
    return None if shape is None else list(shape)


def _calibration(fg: FrozenGraph, ir: Model | None, options: ExportOptions) -> tuple[list, str]:
    from modeltool.exporters.tflite import samples_for

    return samples_for(fg.input_specs(), ir, options)


def to_savedmodel(fg: FrozenGraph, ir: Model | None, path: str, options: ExportOptions) -> dict[str, Any]:
    tf = require("tensorflow", "exporting a SavedModel")
    fn = wrapped_function(fg)
    shapes = _shapes(fg, options)
    specs = [tf.TensorSpec(_static(shapes[e.name]), e.dtype or "float32", name=e.name) for e in fg.inputs]
    names = [e.name for e in fg.outputs]
    module = tf.Module()
    module.graph_fn = fn

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        return dict(zip(names, module.graph_fn(*args)))

    module.serve = serve
    # custom gradients (swish's, in every EfficientNet) capture tensors the frozen graph folded into
    # constants, which `save` refuses ("Found invalid capture"); an inference export needs none
    no_gradients = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(module, path, signatures={"serving_default": serve}, options=no_gradients)
    return {"signature": "serving_default", "inputs": [e.name for e in fg.inputs], "outputs": names}


def to_pb(fg: FrozenGraph, ir: Model | None, path: str, options: ExportOptions) -> dict[str, Any]:
    graph_def = named_graph_def(fg)
    with open(path, "wb") as fh:
        fh.write(graph_def.SerializeToString())
    ops = sorted({n.op for n in graph_def.node})
    return {
        "nodes": len(graph_def.node),
        "op_types": ops,
        "inputs": [e.name for e in fg.inputs],
        "outputs": [e.name for e in fg.outputs],
    }
