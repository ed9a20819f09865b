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

import functools
import os
from typing import Any

from modeltool.deps import require
from modeltool.errors import ModelToolError, UnsupportedError, UsageError
from modeltool.exporters import onnx_layout, onnx_passes
from modeltool.options import ConvertOptions
from modeltool.sources import ExportContext, OnnxGraph, Source

NEVER_DETACH = 1 << 62


#: the oldest opset onnxruntime runs (its documented floor) and tf2onnx writes
MIN_OPSET = 7


def default_opset() -> int:
    """The newest opset tf2onnx writes and the installed onnx and onnxruntime both support."""
    return opset_range()[1]


@functools.lru_cache(maxsize=1)
def opset_range() -> tuple[int, int, str]:
    """(oldest, newest, why): the opsets tf2onnx can write that the installed onnx and onnxruntime
    both support. onnxruntime states no newest opset, so a one-node model is loaded at each
    candidate, newest first, until one loads (it refuses opsets newer than the ONNX it was built with)."""
    tf2onnx = require("tf2onnx", "converting to ONNX")
    onnx = require("onnx", "converting to ONNX")
    ort = require("onnxruntime", "checking the ONNX opset")
    writes, knows = max(tf2onnx.constants.OPSET_TO_IR_VERSION), onnx.defs.onnx_opset_version()
    newest = min(writes, knows)
    while newest > MIN_OPSET and not _runs_opset(onnx, ort, newest):
        newest -= 1
    runs = f"{MIN_OPSET} and newer" if newest == min(writes, knows) else f"{MIN_OPSET} to {newest}"
    why = (
        f"tf2onnx {tf2onnx.__version__} writes opsets up to {writes}, onnx {onnx.__version__} knows up to {knows}, "
        f"onnxruntime {ort.__version__} runs {runs}"
    )
    return MIN_OPSET, newest, why


def _runs_opset(onnx: Any, ort: Any, opset: int) -> bool:
    helper, tensor = onnx.helper, onnx.TensorProto
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", tensor.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", tensor.FLOAT, [1])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - onnxruntime's own exception types: this opset is not run
        return False
    return True


def checked_opset(options: ConvertOptions) -> int:
    """The opset to write: --opset when every tool in the chain supports it, else exit 2 naming the range."""
    oldest, newest, why = opset_range()
    opset = options.opset or newest
    if not oldest <= opset <= newest:
        raise UsageError(f"--opset {opset}: choose from {oldest} to {newest} ({why})")
    return opset


def run_tf2onnx(graph_def: Any, input_names: list[str], output_names: list[str], opset: int, **kwargs: Any) -> Any:
    """`tf2onnx.convert.from_graph_def`, its failures as one UnsupportedError line."""
    tf2onnx = require("tf2onnx", "converting to ONNX")
    from modeltool.exporters.tf2onnx_fixes import vector_scalar_addends

    vector_scalar_addends(graph_def)
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
    """Write `source` as ONNX to `path`; returns details (opset, node count, fixes applied, and what
    the deployment options did: transposes, optimization, quantization)."""
    onnx = require("onnx", "converting to ONNX")
    if options.via == "direct":
        raise UnsupportedError("--via direct: not available for ONNX targets in this version")
    opset = checked_opset(options)
    if source.kind == "tflite":
        return _export_tflite(onnx, source, path, opset, options, context)
    from modeltool.exporters.onnx_quantize import check_quantize

    check_quantize(options, opset)
    graph = source.onnx_graph(options, options.detach_bytes)
    specs = source.input_specs(options.input_shapes)
    try:
        proto = _convert(graph, opset, options, specs)
    except UnsupportedError:
        if not graph.detached:
            raise
        # a large weight that an op needs at conversion time (a shape, a gather table): convert the
        # graph with every weight a constant instead (tf2onnx's own memory profile)
        graph = source.onnx_graph(options, detach_bytes=NEVER_DETACH)
        proto = _convert(graph, opset, options, specs)
    details: dict[str, Any] = {"opset": opset}
    layout = bool(options.inputs_as_nchw or options.outputs_as_nchw)
    if layout:
        details["transposes_channels_last"] = _channels_last_transposes(graph, opset)
    fixes = onnx_passes.run_all(proto, graph.detached, graph.inputs, graph.outputs)
    if layout:
        onnx_layout.check_output_ranks(proto, options.outputs_as_nchw)
        if n := onnx_layout.sink_transposes_into_reductions(proto):
            fixes.append(f"moved {n} transposes into the reductions after them")
    graph.detached.clear()
    weight_bytes = sum(len(t.raw_data) for t in proto.graph.initializer)
    external = weight_bytes >= options.external_data_bytes or options.external_data is not None
    if options.optimize:
        from modeltool.exporters.onnx_optimize import optimize

        before = len(proto.graph.node)
        proto = optimize(onnx, proto, external)
        details["optimized"] = f"onnxruntime basic level: {before} -> {len(proto.graph.node)} nodes"
    if layout:
        details["transposes"] = onnx_layout.activation_transposes(proto)
    if options.quantize:
        from modeltool.exporters.onnx_quantize import quantize

        proto, quantized = quantize(onnx, proto, options, context, specs, source.ir, external)
        details.update(quantized)
    save(onnx, proto, path, external, context.final_path, options.external_data)
    nodes = len(proto.graph.node)
    ops = sorted({n.op_type for n in proto.graph.node})
    del proto
    validate(path)
    return {**details, "nodes": nodes, "op_types": ops, "fixes": fixes, "external_data": external}


def _export_tflite(onnx: Any, source: Source, path: str, opset: int, options: ConvertOptions,
                   context: ExportContext) -> dict[str, Any]:  # fmt: skip
    """A TFLite flatbuffer through tf2onnx's TFLite front end; the boundary renamed to LiteRT's names
    (a SignatureDef's `x`, not `serving_default_x:0`), dynamic dims named."""
    asked = [flag for flag, on in (("--quantize", options.quantize), ("--optimize", options.optimize),
                                   ("--inputs-as-nchw", options.inputs_as_nchw),
                                   ("--outputs-as-nchw", options.outputs_as_nchw)) if on]  # fmt: skip
    if asked:
        raise UsageError(f"{', '.join(asked)}: not available when converting from a TFLite flatbuffer")
    tf2onnx = require("tf2onnx", "converting TFLite to ONNX")
    try:
        proto, _ = tf2onnx.convert.from_tflite(source.path, opset=opset)
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises anything on a flatbuffer it cannot read
        raise UnsupportedError(
            f"tf2onnx cannot convert this TFLite model ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        ) from exc
    ins, outs = source.boundary()  # type: ignore[attr-defined]
    graph = proto.graph
    if len(graph.input) != len(ins) or len(graph.output) != len(outs):
        raise UnsupportedError(f"tf2onnx wrote {len(graph.input)} inputs and {len(graph.output)} outputs; the "
                               f"TFLite model has {len(ins)} and {len(outs)}")  # fmt: skip
    onnx_passes.rename_boundary(proto, dict(zip((i.name for i in graph.input), ins)),
                                dict(zip((o.name for o in graph.output), outs)))  # fmt: skip
    onnx_passes.name_dynamic_dims(proto)
    weight_bytes = sum(len(t.raw_data) for t in graph.initializer)
    external = weight_bytes >= options.external_data_bytes or options.external_data is not None
    save(onnx, proto, path, external, context.final_path, options.external_data)
    nodes, ops = len(graph.node), sorted({n.op_type for n in graph.node})
    del proto
    validate(path)
    return {"opset": opset, "nodes": nodes, "op_types": ops, "fixes": [], "external_data": external,
            "front_end": "tf2onnx TFLite"}  # fmt: skip


def _channels_last_transposes(graph: OnnxGraph, opset: int) -> int | None:
    """The transposes the same model has without the channels-first boundaries (what the report
    compares with): tf2onnx once more on the same light graph, weights still kept out."""
    try:
        plain = run_tf2onnx(graph.graph_def, list(graph.inputs) + list(graph.detached), list(graph.outputs), opset,
                            shape_override=graph.shape_override)  # fmt: skip
    except UnsupportedError:
        return None
    return onnx_layout.activation_transposes(plain, weights=set(graph.detached))


def _convert(graph: OnnxGraph, opset: int, options: ConvertOptions, specs: list) -> Any:
    names = list(graph.inputs) + list(graph.detached)
    layout: dict[str, Any] = {}
    if options.inputs_as_nchw or options.outputs_as_nchw:
        inputs, outputs = onnx_layout.layout_tensors(graph, specs, options.inputs_as_nchw, options.outputs_as_nchw)
        layout = {"inputs_as_nchw": inputs or None, "outputs_as_nchw": outputs or None}
    return run_tf2onnx(graph.graph_def, names, list(graph.outputs), opset, shape_override=graph.shape_override,
                       **layout)  # fmt: skip


#: `--external-data`: one sidecar file, or one file per tensor in a folder beside the model
EXTERNAL_DATA_LAYOUTS = ("single", "per-tensor")


def save(onnx: Any, proto: Any, path: str, external: bool, final_path: str, layout: str | None = None) -> None:
    """Save; over protobuf's 2 GB limit (or with `--external-data`) the weights go to
    `<final name>.data` beside the model, or with `per-tensor` one file per weight in the folder
    `<final name>.data.d/` (the data is written in place, the model file itself still lands by rename)."""
    if not external:
        onnx.save_model(proto, path)
        return
    if layout not in (None, *EXTERNAL_DATA_LAYOUTS):
        raise UsageError(f"--external-data {layout}: choose {' or '.join(EXTERNAL_DATA_LAYOUTS)}")
    base = os.path.basename(final_path)
    if layout != "per-tensor":
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location=f"{base}.data",
                        size_threshold=1024)  # fmt: skip
        return
    from onnx.external_data_helper import set_external_data

    folder = f"{base}.data.d"
    os.makedirs(os.path.join(os.path.dirname(path), folder), exist_ok=True)
    for i, tensor in enumerate(proto.graph.initializer):
        if tensor.HasField("raw_data") and len(tensor.raw_data) >= 1024:
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in tensor.name)[:100]
            set_external_data(tensor, location=f"{folder}/{i:05d}_{safe}")
    onnx.save_model(proto, path)  # writes every tensor marked external to its own file


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
    from modeltool.runners.onnxruntime import session_options

    try:
        ort.InferenceSession(file, session_options(ort, file), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        raise UnsupportedError(
            f"onnxruntime cannot load the converted model ({' '.join(str(exc).split())[:300]})"
        ) from exc
