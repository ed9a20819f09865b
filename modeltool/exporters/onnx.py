"""ONNX through tf2onnx, with the weights kept out of tf2onnx and checked on the way out.

tf2onnx copies every constant through its graph passes and peaks at ~45x the weight size (VGG16 is
killed at 24 GB), and TF's own freezing of a 500 MB model peaks at ~12x. modeltool never makes the
large weights constants: the source gives a graph whose weights over `detach_bytes` are
placeholders (`Source.onnx_graph`), tf2onnx converts that light graph, and the large weights are
attached as ONNX initializers afterwards (`onnx_passes.attach_initializers`), one at a time.
tf2onnx also exits 0 on models it got wrong (grouped convolutions lose their `group`, unsupported
ops stay as TF ops): the passes fix what they can and `validate` refuses what is still broken.
"""

from __future__ import annotations

import os
from typing import Any

from modeltool.deps import require
from modeltool.errors import ModelToolError, UnsupportedError
from modeltool.exporters import onnx_passes
from modeltool.options import ConvertOptions
from modeltool.sources import ExportContext, OnnxGraph, Source

NEVER_DETACH = 1 << 62


def default_opset() -> int:
    """The newest opset both tf2onnx and the installed onnx/onnxruntime know."""
    tf2onnx = require("tf2onnx", "converting to ONNX")
    onnx = require("onnx", "converting to ONNX")
    return min(max(tf2onnx.constants.OPSET_TO_IR_VERSION), onnx.defs.onnx_opset_version())


def checked_opset(options: ConvertOptions) -> int:
    """The opset to write: --opset when tf2onnx supports it, else the default."""
    tf2onnx = require("tf2onnx", "converting to ONNX")
    opset = options.opset or default_opset()
    newest = max(tf2onnx.constants.OPSET_TO_IR_VERSION)
    if not 7 <= opset <= newest:
        raise UnsupportedError(f"--opset {opset}: tf2onnx {tf2onnx.__version__} supports 7 to {newest}")
    return opset


def run_tf2onnx(graph_def: Any, input_names: list[str], output_names: list[str], opset: int, **kwargs: Any) -> Any:
    """`tf2onnx.convert.from_graph_def`, its failures as one UnsupportedError line."""
    tf2onnx = require("tf2onnx", "converting to ONNX")
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=input_names, output_names=output_names, opset=opset, **kwargs
        )
    except ModelToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises anything on an op it cannot handle
        raise UnsupportedError(
            f"tf2onnx cannot convert this model ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        ) from exc
    return proto


def export(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    """Write `source` as ONNX to `path`; returns details (opset, node count, fixes applied)."""
    onnx = require("onnx", "converting to ONNX")
    pending = [flag for flag, on in (("--quantize", options.quantize), ("--inputs-as-nchw", options.inputs_as_nchw),
                                      ("--outputs-as-nchw", options.outputs_as_nchw), ("--optimize", options.optimize),
                                      ("--via direct", options.via == "direct")) if on]  # fmt: skip
    if pending:
        raise UnsupportedError(f"{', '.join(pending)}: not available for ONNX targets in this version")
    opset = checked_opset(options)
    graph = source.onnx_graph(options, options.detach_bytes)
    try:
        proto = _convert(graph, opset)
    except UnsupportedError:
        if not graph.detached:
            raise
        # a large weight that an op needs at conversion time (a shape, a gather table): convert the
        # graph with every weight a constant instead (tf2onnx's own memory profile)
        graph = source.onnx_graph(options, detach_bytes=NEVER_DETACH)
        proto = _convert(graph, opset)
    fixes = onnx_passes.run_all(proto, graph.detached, graph.inputs, graph.outputs)
    graph.detached.clear()
    weight_bytes = sum(len(t.raw_data) for t in proto.graph.initializer)
    external = weight_bytes >= options.external_data_bytes
    save(onnx, proto, path, external, context.final_path)
    nodes = len(proto.graph.node)
    ops = sorted({n.op_type for n in proto.graph.node})
    del proto
    validate(path)
    return {"opset": opset, "nodes": nodes, "op_types": ops, "fixes": fixes, "external_data": external}


def _convert(graph: OnnxGraph, opset: int) -> Any:
    names = list(graph.inputs) + list(graph.detached)
    return run_tf2onnx(graph.graph_def, names, list(graph.outputs), opset, shape_override=graph.shape_override)


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
