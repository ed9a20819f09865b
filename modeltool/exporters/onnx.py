"""ONNX through tf2onnx, with the weights kept out of tf2onnx and checked on the way out.

tf2onnx copies every constant through its graph passes and peaks at ~45x the weight size (VGG16 is
killed at 24 GB). modeltool freezes the serving function, turns every constant larger than
`detach_bytes` into a placeholder, converts that light graph, then attaches the constants as ONNX
initializers (`onnx_passes.attach_initializers`) one at a time. tf2onnx also exits 0 on models it
got wrong (grouped convolutions lose their `group`, unsupported ops stay as TF ops): the passes fix
what they can and `validate` refuses what is still broken.
"""

from __future__ import annotations

import os
from typing import Any

from modeltool.deps import require
from modeltool.errors import ModelToolError, UnsupportedError
from modeltool.exporters import onnx_passes
from modeltool.exporters.serving import ExportOptions, boundary_names, plain_grouped_convs, serving_function
from modeltool.ir import Model

TWO_GB = 2**31 - 1


def default_opset() -> int:
    """The newest opset both tf2onnx and the installed onnx/onnxruntime know."""
    tf2onnx = require("tf2onnx", "converting to ONNX")
    onnx = require("onnx", "converting to ONNX")
    return min(max(tf2onnx.constants.OPSET_TO_IR_VERSION), onnx.defs.onnx_opset_version())


def frozen_graph(native: Any, ir: Model | None, options: ExportOptions) -> tuple[Any, dict[str, str], dict[str, str]]:
    """(GraphDef with variables folded, {input tensor: source name}, {output tensor: source name}),
    outputs in the source model's order."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    with plain_grouped_convs():
        concrete = serving_function(native, ir, options.input_shapes).get_concrete_function()
    keys = sorted(concrete.structured_outputs)  # tf.nest flattens a dict in sorted-key order
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
    in_names, out_names = boundary_names(native, ir)
    inputs = [t.name for t in frozen.inputs if t.dtype.name != "resource"]
    by_key = dict(zip(keys, (t.name for t in frozen.outputs)))
    return frozen.graph.as_graph_def(), dict(zip(inputs, in_names)), {by_key[k]: k for k in out_names}


def detach_constants(graph_def: Any, limit: int) -> dict[str, Any]:
    """Replace Const nodes over `limit` bytes by Placeholders; returns {tensor name: TensorProto}."""
    detached = {}
    for node in graph_def.node:
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        nbytes = len(tensor.tensor_content)
        if nbytes <= limit:
            continue
        proto = type(tensor)()
        proto.CopyFrom(tensor)
        detached[f"{node.name}:0"] = proto
        dtype, shape = node.attr["dtype"].type, tensor.tensor_shape
        node.op = "Placeholder"
        node.ClearField("attr")
        node.attr["dtype"].type = dtype
        node.attr["shape"].shape.CopyFrom(shape)
    return detached


def export(native: Any, ir: Model | None, path: str, options: ExportOptions) -> dict[str, Any]:
    """Write `native` as ONNX to `path`; returns details (opset, node count, fixes applied)."""
    tf2onnx = require("tf2onnx", "converting to ONNX")
    onnx = require("onnx", "converting to ONNX")
    opset = options.opset or default_opset()
    newest = max(tf2onnx.constants.OPSET_TO_IR_VERSION)
    if not 7 <= opset <= newest:
        raise UnsupportedError(f"--opset {opset}: tf2onnx {tf2onnx.__version__} supports 7 to {newest}")
    graph_def, inputs, outputs = frozen_graph(native, ir, options)
    detached = detach_constants(graph_def, options.detach_bytes)
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=list(inputs) + list(detached), output_names=list(outputs), opset=opset
        )
    except ModelToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises anything on an op it cannot handle
        raise UnsupportedError(
            f"tf2onnx cannot convert this model ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        ) from exc
    del graph_def
    fixes = onnx_passes.run_all(proto, detached, inputs, outputs)
    detached.clear()
    size = proto.ByteSize() if proto.ByteSize() < TWO_GB else TWO_GB
    external = size >= TWO_GB or sum(len(t.raw_data) for t in proto.graph.initializer) >= TWO_GB - (64 << 20)
    save(onnx, proto, path, external, options.final_path or path)
    nodes = len(proto.graph.node)
    ops = sorted({n.op_type for n in proto.graph.node})
    del proto
    validate(path)
    return {"opset": opset, "nodes": nodes, "op_types": ops, "fixes": fixes, "external_data": external}


def save(onnx: Any, proto: Any, path: str, external: bool, final_path: str) -> None:
    """Save; over protobuf's 2 GB limit the weights go to `<final name>.data` beside the model
    (the data file is written in place, the model file itself still lands by rename)."""
    if not external:
        onnx.save_model(proto, path)
        return
    location = os.path.basename(final_path) + ".data"
    onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location=location,
                    size_threshold=1024)  # fmt: skip


def validate(path: str) -> None:
    """onnx.checker, every op known to its domain's schema, and a session in onnxruntime."""
    onnx = require("onnx", "checking ONNX models")
    ort = require("onnxruntime", "checking that the ONNX model loads")
    file = path
    try:
        onnx.checker.check_model(file)
    except Exception as exc:  # noqa: BLE001 - ValidationError and friends
        raise UnsupportedError(f"the converted ONNX model is invalid ({' '.join(str(exc).split())[:300]})") from exc
    model = onnx.load(file, load_external_data=False)
    unknown = onnx_passes.unknown_ops(model)
    if unknown:
        raise UnsupportedError(f"tf2onnx left ops ONNX does not define: {', '.join(unknown)} (not converted)")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        raise UnsupportedError(
            f"onnxruntime cannot load the converted model ({' '.join(str(exc).split())[:300]})"
        ) from exc
