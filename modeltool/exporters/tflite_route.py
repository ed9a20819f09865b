"""TFLite targets: which route writes the file, and why.

Two exporters write `.tflite`. The direct one (`exporters/litert/`) writes the flatbuffer straight
from modeltool's IR: builtin ops only, no TensorFlow, no TFLite converter, in a fraction of a
second. The TensorFlow one (`exporters/tflite.py`) traces the rebuilt Keras model and runs the
TFLite converter; it also converts what has no Keras layers (SavedModels, GraphDefs, checkpoints),
recurrent layers (unrolled by Keras), Python-defined layers, and full-integer (int8) quantization.

`--via direct|tf|auto` chooses, as for ONNX. `auto` (the default) takes the direct route when the
source is a Keras file whose every layer has a TFLite lowering, the quantization asked for is one
it writes (none, float16, dynamic) and a Keras runtime can compute the reference (none is needed with
`--no-verify`); else the TensorFlow route. The report's `route` and `route_reason` say which ran
and why.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modeltool.deps import available
from modeltool.errors import MissingDependencyError, UnsupportedError
from modeltool.exporters.routes import check_via, require_tensorflow_route
from modeltool.options import ConvertOptions
from modeltool.sources import ExportContext, Source


def export(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> dict[str, Any]:
    """Write `source` as a .tflite file by the route `options.via` picks; details include `route`
    and `route_reason`."""
    check_via(options)
    route, reason, built = choose(source, options)
    if route == "tf":
        from modeltool.exporters import tflite as tf_route
        from modeltool.targets import Target

        require_tensorflow_route(source, reason)
        if source.kind == "keras":
            # a Keras source prepared for the direct route is prepared again for this one (its
            # recurrent layers unrolled by Keras, its model built)
            source = source.prepared(Target.TFLITE, replace(options, via="tf"), context)
        return {"route": "tf", "route_reason": reason, **tf_route.export(source, path, options, context)}
    with open(path, "wb") as f:
        f.write(built.data)
    context.warnings.extend(n for n in built.notes if n not in context.warnings)
    return {"route": "direct", "route_reason": reason, "quantize": options.quantize or "none", "ops": built.ops,
            "op_types": sorted(built.op_counts), "fixes": built.folds, "lowered": built.decisions, "flex_ops": [],
            "bytes": len(built.data)}  # fmt: skip


def tf_route_available() -> bool:
    return available("tensorflow")


def choose(source: Source, options: ConvertOptions) -> tuple[str, str, Any]:
    """(route, why, the direct build when that route was taken)."""
    from modeltool.exporters.direct.context import NotCovered
    from modeltool.exporters.litert.export import DIRECT_QUANTIZE, gaps
    from modeltool.exporters.onnx_route import direct_ir

    if options.via == "tf":
        return "tf", "--via tf", None
    direct = options.via == "direct"
    if source.kind != "keras":
        why = f"a {source.ir.metadata.format_description} has no Keras layers for the direct route"
        if direct:
            raise UnsupportedError(f"--via direct: {why}; convert it with --via tf (or auto)")
        return "tf", why, None
    found = gaps(direct_ir(source), getattr(source, "custom", None))
    if found:
        if direct:
            raise UnsupportedError(f"--via direct: {found[0]}; --via tf converts it through TensorFlow")
        why = f"the direct route cannot write {found[0]}"
        return _fallback(source, why), why, None
    if options.quantize not in (None, "none", *DIRECT_QUANTIZE):
        why = (
            f"--quantize {options.quantize}: implemented on the TensorFlow route (the direct route writes "
            f"{' and '.join(DIRECT_QUANTIZE)})"
        )
        if direct:
            raise UnsupportedError(f"--via direct: {why}; use --via tf (or auto)")
        return _fallback(source, why), why, None
    try:
        built = build_direct(source, options)
    except NotCovered as exc:
        if direct:
            raise UnsupportedError(f"--via direct: {exc}; --via tf converts it through TensorFlow") from exc
        why = f"the direct route cannot write {exc}"
        return _fallback(source, why), why, None
    if options.verify and not available("keras") and not direct:
        why = "no Keras runtime is installed to compute the reference"
        if tf_route_available():
            return "tf", why, None
        raise MissingDependencyError(f"{why}; install one (pip install 'modeltool-tf[jax]') or pass --no-verify")
    how = "; not verified (--no-verify)" if not options.verify else "; verified in LiteRT against Keras"
    return "direct", f"every layer has a TFLite lowering ({built.ops} ops){how}", built


def _fallback(source: Source, why: str) -> str:
    if not tf_route_available():
        raise UnsupportedError(f"{source.path}: {why}, and the TensorFlow route is not installed "
                               "(pip install 'modeltool-tf[tf]')")  # fmt: skip
    return "tf"


def build_direct(source: Source, options: ConvertOptions) -> Any:
    from modeltool.exporters.direct.export import version
    from modeltool.exporters.litert.export import build
    from modeltool.exporters.onnx_route import direct_ir
    from modeltool.sources.keras import ir_boundary_names

    ir = direct_ir(source)
    metadata = {"producer": f"modeltool {version()}", "source": source.path,
                "source_format": source.ir.format.value}  # fmt: skip
    return build(ir, ir_boundary_names(ir), input_shapes=options.input_shapes, custom=getattr(source, "custom", None),
                 quantize=options.quantize, metadata=metadata)  # fmt: skip
