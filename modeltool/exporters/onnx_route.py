"""ONNX targets: which route writes the file, and why.

Two exporters write ONNX. The direct one (`exporters/direct/`) writes the graph straight from
modeltool's IR: no TensorFlow, no tf2onnx, sub-second. The TensorFlow one (`exporters/onnx.py`)
traces the rebuilt Keras model and converts it with tf2onnx; it also converts what has no Keras layers
(SavedModels, GraphDefs, checkpoints) and layers only Python code defines (Lambda, custom classes
without a converter, subclassed models).

`--via direct|tf|auto` chooses. `auto` (the default) takes the direct route when the source is a
Keras file, every layer has a direct converter and the file can be verified without the TensorFlow
route (a Keras runtime on any backend computes the reference; none is needed with `--no-verify`),
else the TensorFlow route. Options that only the TensorFlow route implements today (`--quantize`,
`--optimize`, a non-default constant detachment) send `auto` there when TensorFlow is installed;
`--via direct` applies the same onnxruntime passes to the direct output. The report's `route` and
`route_reason` say which ran and why.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from modeltool.deps import available, require
from modeltool.errors import MissingDependencyError, UnsupportedError, UsageError
from modeltool.exporters.routes import check_via, require_tensorflow_route
from modeltool.ir import TensorSpec
from modeltool.options import ConvertOptions
from modeltool.sources import ExportContext, Source

#: ConvertOptions fields only the TensorFlow route implements today -> their flag
TF_ROUTE_OPTIONS = {"quantize": "--quantize", "optimize": "--optimize"}


def export(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    """Write `source` as ONNX to `path` by the route `options.via` picks; details include `route`
    and `route_reason`."""
    check_via(options)
    route, reason, built = choose(source, options)
    if route == "tf":
        from modeltool.exporters import onnx as tf_route

        require_tensorflow_route(source, reason)
        details = tf_route.export(source, path, replace(options, via="tf"), context)
        return {"route": "tf", "route_reason": reason, **details}
    return {"route": "direct", "route_reason": reason, **write_direct(source, built, path, options, context)}


def tf_route_available() -> bool:
    return available("tensorflow") and available("tf2onnx")


def choose(source: Source, options: ConvertOptions) -> tuple[str, str, Any]:
    """(route, why, the direct build when that route was taken)."""
    if options.via == "tf":
        return "tf", "--via tf", None
    if source.kind != "keras" or getattr(source, "unrolled_from", None) is not None:
        why = f"a {source.ir.metadata.format_description} has no Keras layers for the direct route"
        if options.via == "direct":
            raise UnsupportedError(f"--via direct: {why}; convert it with --via tf (or auto)")
        return "tf", why, None
    if options.via == "auto" and tf_route_available():
        asked = [flag for name, flag in TF_ROUTE_OPTIONS.items() if getattr(options, name)]
        if options.detach_bytes != ConvertOptions.detach_bytes:
            asked.append("a constant detachment size (detach_bytes)")
        if asked:
            why = f"{', '.join(asked)}: implemented on the TensorFlow route (--via direct to write it directly)"
            return "tf", why, None
        from modeltool.exporters.direct.export import MIN_OPSET

        if options.opset is not None and options.opset < MIN_OPSET:
            return "tf", f"--opset {options.opset}: the direct route writes opsets {MIN_OPSET} and newer", None
    from modeltool.exporters.direct.context import NotCovered

    try:
        built = build_direct(source, options)
    except NotCovered as exc:
        if options.via == "direct":
            raise UnsupportedError(f"--via direct: {exc}; --via tf converts it through TensorFlow") from exc
        if not tf_route_available():
            raise UnsupportedError(f"{source.path}: the direct ONNX route cannot write {exc}, and the TensorFlow route "
                                   "is not installed (pip install 'modeltool-tf[tf]')") from exc  # fmt: skip
        return "tf", f"the direct route cannot write {exc}", None
    check = _verification(options)
    if check is not None and options.via == "auto":
        if tf_route_available():
            return "tf", check, None
        raise MissingDependencyError(f"{check}; install one (pip install 'modeltool-tf[jax]') or pass --no-verify")
    ir = direct_ir(source)
    layers = sum(1 for _, n in ir.graph.walk() if n.subgraph is None and n.op != "InputLayer")  # type: ignore[union-attr]
    how = "; not verified (--no-verify)" if not options.verify else f"; the reference runs on Keras ({_backend()})"
    return "direct", f"every layer has a direct converter ({layers} layers){how}", built


def _verification(options: ConvertOptions) -> str | None:
    """Why the direct output could not be verified here (no Keras runtime), or None."""
    if not options.verify or available("keras"):
        return None
    return "no Keras runtime is installed to compute the reference"


def _backend() -> str:
    """The Keras backend the reference runs on (the one modeltool's deps would pick)."""
    from modeltool.deps import keras_backend

    return keras_backend()


def boundary(source: Source) -> tuple[list[str], list[str]]:
    from modeltool.sources.keras import ir_boundary_names

    return ir_boundary_names(direct_ir(source))


def direct_ir(source: Source) -> Any:
    """What the direct route writes from (a library backbone's functional graph, `KerasSource.direct_ir`)."""
    getter = getattr(source, "direct_ir", None)
    return getter() if getter is not None else source.ir


def build_direct(source: Source, options: ConvertOptions) -> Any:
    from modeltool.exporters.direct.export import DEFAULT_OPSET, build

    opset = checked_opset(options)
    built = build(direct_ir(source), boundary(source), opset=opset or DEFAULT_OPSET, input_shapes=options.input_shapes,
                  inputs_as_nchw=_image_inputs(source, options), outputs_as_nchw=options.outputs_as_nchw,
                  custom=getattr(source, "custom", None))  # fmt: skip
    return built


def _image_inputs(source: Source, options: ConvertOptions) -> tuple[str, ...]:
    """--inputs-as-nchw names, each a rank-4 image input (as on the TensorFlow route)."""
    ins, _ = boundary(source)
    graph = direct_ir(source).graph
    specs = dict(zip(ins, graph.inputs)) if graph is not None else {}
    for name in options.inputs_as_nchw:
        spec = specs.get(name)
        if spec is None:
            raise UsageError(f"--inputs-as-nchw {name}: no input named so; inputs: {', '.join(ins)}")
        if spec.shape is not None and len(spec.shape) != 4:
            raise UsageError(
                f"--inputs-as-nchw {name}: the input has rank {len(spec.shape)} (shape "
                f"{list(spec.shape)}); only rank-4 image inputs (N, H, W, C) can be made channels-first"
            )
    return tuple(options.inputs_as_nchw)


def checked_opset(options: ConvertOptions) -> int | None:
    """--opset within what the direct route writes (13 up to the installed onnx's newest)."""
    if options.opset is None:
        return None
    from modeltool.exporters.direct.export import MIN_OPSET

    newest = int(require("onnx", "writing ONNX").defs.onnx_opset_version())
    if not MIN_OPSET <= options.opset <= newest:
        raise UsageError(f"--opset {options.opset}: the direct route writes opsets {MIN_OPSET} to {newest}")
    return options.opset


def write_direct(source: Source, built: Any, path: str, options: ConvertOptions,
                 context: ExportContext) -> dict[str, Any]:  # fmt: skip
    """Save the direct build (after the onnxruntime passes asked for), check it, and describe it."""
    from modeltool.exporters import onnx as onnx_files

    onnx = require("onnx", "writing ONNX")
    details: dict[str, Any] = {"opset": built.opset}
    for name in options.outputs_as_nchw:
        rank = _output_rank(built.graph, name)
        if rank != 4:
            raise UsageError(f"--outputs-as-nchw {name}: the output has rank {rank}; only rank-4 outputs can be "
                             "made channels-first")  # fmt: skip
    if options.inputs_as_nchw or options.outputs_as_nchw:
        plain = build_direct(source, replace(options, inputs_as_nchw=(), outputs_as_nchw=()))
        details["transposes_channels_last"] = plain.transposes()
        details["transposes"] = built.transposes()
    external = built.weight_bytes() >= options.external_data_bytes or options.external_data is not None
    if not (options.optimize or options.quantize):
        # streamed: each weight goes from its array to the file (the data file, or the model's own
        # bytes one weight at a time); the whole model is never one protobuf in memory
        nodes, ops = built.nodes, built.op_types()
        if external:
            layout = options.external_data or "single"
            if layout not in onnx_files.EXTERNAL_DATA_LAYOUTS:
                raise UsageError(f"--external-data {layout}: choose {' or '.join(onnx_files.EXTERNAL_DATA_LAYOUTS)}")
            base = os.path.basename(context.final_path)
            per_tensor = layout == "per-tensor"
            built.save_external(path, f"{base}.data.d" if per_tensor else f"{base}.data", per_tensor)
        else:
            built.save(path)
        onnx_files.validate(path)
        context.warnings.extend(n for n in built.notes if n not in context.warnings)
        return {**details, "nodes": nodes, "op_types": ops, "fixes": built.folds, "external_data": external}
    proto = built.proto
    if options.optimize:
        from modeltool.exporters.onnx_optimize import optimize

        before = len(proto.graph.node)
        proto = optimize(onnx, proto, external)
        details["optimized"] = f"onnxruntime basic level: {before} -> {len(proto.graph.node)} nodes"
    if options.quantize:
        from modeltool.exporters.onnx_quantize import check_quantize, quantize

        check_quantize(options, built.opset)
        proto, quantized = quantize(onnx, proto, options, context, _specs(source, options), source.ir, external)
        details.update(quantized)
    onnx_files.save(onnx, proto, path, external, context.final_path, options.external_data)
    nodes, ops = len(proto.graph.node), sorted({n.op_type for n in proto.graph.node})
    del proto
    onnx_files.validate(path)
    context.warnings.extend(n for n in built.notes if n not in context.warnings)
    return {**details, "nodes": nodes, "op_types": ops, "fixes": built.folds, "external_data": external}


def _output_rank(graph: Any, name: str) -> int:
    for o in graph.output:
        if o.name == name:
            return len(o.type.tensor_type.shape.dim)
    return -1


def _specs(source: Source, options: ConvertOptions) -> list[TensorSpec]:
    """The input specs (source names, shapes with --input-shape applied) for calibration."""
    ins, _ = boundary(source)
    out = []
    graph = direct_ir(source).graph
    for name, spec in zip(ins, graph.inputs if graph else []):
        shape = options.input_shapes.get(name, spec.shape)
        out.append(TensorSpec(name, tuple(shape) if shape is not None else None, spec.dtype))
    return out
