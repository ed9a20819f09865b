"""`convert`: load -> rebuild -> export (to a temporary sibling) -> check -> rename into place.

Runnable targets (ONNX, TFLite, SavedModel) are verified against the source model on the same
inputs; Keras targets are read back by Keras 3 and their weights compared. Any failure, a
verification mismatch included, leaves nothing at the destination.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from modeltool.atomic import atomic_path, check_destination
from modeltool.errors import UnsupportedError, UsageError
from modeltool.exporters import EXPORTERS, GRAPH_EXPORTERS, RUNNABLE, target_for
from modeltool.exporters.serving import ExportOptions
from modeltool.formats import Format
from modeltool.ir import Model
from modeltool.loaders.keras_common import path_size
from modeltool.verify import TOLERANCES, Tolerance, VerifyReport

Progress = Callable[[str], None]
KERAS_SOURCES = {Format.KERAS_H5.value, Format.KERAS_V3.value, Format.KERAS_JSON.value, Format.KERAS_YAML.value}
GRAPH_SOURCES = {Format.SAVEDMODEL.value, Format.GRAPHDEF.value, Format.CHECKPOINT.value}
RNN_LAYERS = {"LSTM", "GRU", "SimpleRNN", "CuDNNLSTM", "CuDNNGRU"}


@dataclass
class ConvertReport:
    """What a conversion did: paths, sizes, timings per step, target details, verification."""

    source: str
    source_format: str
    target: str
    output: str
    size_before: int = 0
    size_after: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    verification: VerifyReport | None = None
    written: bool = False

    @property
    def passed(self) -> bool:
        return self.verification is None or self.verification.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "written": self.written,
            "source": self.source,
            "source_format": self.source_format,
            "target": self.target,
            "output": self.output,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "details": self.details,
            "warnings": list(self.warnings),
            "verification": self.verification.to_dict() if self.verification else None,
        }

    def render(self) -> str:
        lines = [f"{self.source} ({self.source_format}) -> {self.output} ({self.target})"]
        ratio = f" ({self.size_after / self.size_before:.2f}x)" if self.size_before else ""
        lines.append(f"size: {_mb(self.size_before)} -> {_mb(self.size_after)}{ratio}")
        lines.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))
        for key, value in self.details.items():
            if value not in (None, [], {}):
                lines.append(f"{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
        lines += [f"warning: {w}" for w in self.warnings]
        if self.verification is not None:
            lines.append(self.verification.render())
        if not self.written:
            lines.append(
                f"nothing written to {self.output}"
                + (" (use --no-verify to keep an unverified file)" if not self.passed else "")
            )
        return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


@dataclass
class ConvertOptions:
    """The knobs of `convert` beside the export options."""

    to: str | None = None
    force: bool = False
    verify: bool = True
    custom_objects: str | None = None
    unsafe: bool = False
    weights_from: str | None = None
    atol: float | None = None
    rtol: float | None = None
    input_data: str | None = None
    batch: int = 2
    #: graph sources: SavedModel signature, GraphDef/TF1 boundary, checkpoint architecture
    signature: str | None = None
    inputs: str | None = None
    outputs: str | None = None
    config: str | None = None
    #: Keras sources: "writer" (the runtime that wrote the file), "rebuild" (Keras 3), None = writer if installed
    reference: str | None = None


def tolerance_for(quantize: str | None, atol: float | None, rtol: float | None) -> Tolerance:
    base = TOLERANCES.get(quantize or "float32", TOLERANCES["float32"])
    return Tolerance(base.atol if atol is None else atol, base.rtol if rtol is None else rtol, base.min_cosine)


#: export options that only some targets take -> those targets
TARGET_ONLY_OPTIONS = {
    "quantize": ("--quantize", ("tflite",)),
    "calibration": ("--calibration", ("tflite",)),
    "allow_flex": ("--allow-flex", ("tflite",)),
    "opset": ("--opset", ("onnx",)),
}


def _check_target_options(target: str, eo: ExportOptions) -> None:
    """An option the target does not take is a usage error naming both, never silently ignored."""
    for attr, (flag, targets) in TARGET_ONLY_OPTIONS.items():
        if getattr(eo, attr, None) and target not in targets:
            raise UsageError(f"{flag} applies to {'/'.join(targets)} targets only, not to {target}")


def has_rnn(model: Model) -> bool:
    """True when a recurrent layer (also inside Bidirectional/TimeDistributed) is in the model."""
    for _, node in model.graph.walk() if model.graph is not None else []:
        inner = node.config.get("layer") if isinstance(node.config, dict) else None
        inner_cls = inner.get("class_name") if isinstance(inner, dict) else None
        if node.op in RNN_LAYERS or inner_cls in RNN_LAYERS:
            return True
    return False


@contextmanager
def _step(report: ConvertReport, name: str, progress: Progress | None) -> Iterator[None]:
    if progress:
        progress(name)
    start = time.perf_counter()
    try:
        yield
    finally:
        report.timings[name] = report.timings.get(name, 0.0) + time.perf_counter() - start


def convert(
    src: str | os.PathLike,
    dst: str,
    options: ConvertOptions | None = None,
    export_options: ExportOptions | None = None,
    progress: Progress | None = None,
) -> ConvertReport:
    """Convert `src` to `dst` (target from its name or `options.to`); see the module docstring."""
    from modeltool.keras.rebuild import build, load_custom_objects
    from modeltool.loaders import load, source_options

    options = options or ConvertOptions()
    eo = export_options or ExportOptions()
    src = os.fspath(src)
    target = target_for(dst, options.to)
    check_destination(dst, options.force)
    _check_target_options(target, eo)
    eo.final_path = dst.rstrip("/")
    report = ConvertReport(src, "?", target, dst.rstrip("/"))
    with _step(report, "load", progress):
        ir = load(src, **source_options(weights_from=options.weights_from, config=options.config,
                                         inputs=options.inputs, outputs=options.outputs))  # fmt: skip
    report.source_format, report.size_before = ir.format, ir.metadata.file_size
    if ir.format in (Format.KERAS_H5_WEIGHTS.value, Format.KERAS3_WEIGHTS.value):
        raise UnsupportedError(
            f"{src}: holds weights only, no architecture; convert the architecture (JSON/YAML with --weights-from "
            f"{os.path.basename(src)}, or a full .h5/.keras model)"
        )
    if ir.format in GRAPH_SOURCES and ir.config is None:
        return _convert_graph(ir, src, dst, target, options, eo, report, progress)
    if ir.format not in KERAS_SOURCES and not (ir.format == Format.CHECKPOINT.value and ir.config is not None):
        raise UnsupportedError(
            f"{src}: converting from {ir.metadata.format_description} is not supported (ONNX and TFLite files are "
            "inspection and verification formats)"
        )
    custom = load_custom_objects(options.custom_objects)
    shapes = [eo.input_shapes.get(s.name) for s in ir.graph.inputs] if eo.input_shapes and ir.graph else None
    unroll = target == "tflite" and has_rnn(ir) and not eo.allow_flex
    with _step(report, "rebuild", progress):
        reference = build(ir, custom_objects=custom, unsafe=options.unsafe, input_shapes=shapes, notes=report.warnings)
        native = reference
        if unroll:
            native = _unrolled(build, ir, custom, options, shapes, report)
    if options.unsafe:
        report.warnings.append("--unsafe: Python code from the model file (Lambda layers) was run")

    def reference_runner() -> Any:
        from modeltool.runners.keras import keras_reference

        return keras_reference(ir, lambda: reference, options.reference, custom)

    def roundtrip_check(tmp: str) -> dict[str, Any]:
        from modeltool.exporters.keras import roundtrip

        return roundtrip(target, native, tmp, custom)

    return _export(native, ir, dst, target, EXPORTERS, options, eo, report, progress, reference_runner,
                   roundtrip_check)  # fmt: skip


def _convert_graph(
    ir: Model, src: str, dst: str, target: str, options: ConvertOptions, eo: ExportOptions,
    report: ConvertReport, progress: Progress | None,
) -> ConvertReport:  # fmt: skip
    """A SavedModel, frozen GraphDef or TF1 checkpoint: frozen once, written from the frozen graph,
    verified against the source run by TensorFlow from the file itself."""
    from modeltool.tfgraph.native import from_ir

    if target not in GRAPH_EXPORTERS:
        raise UnsupportedError(
            f"{src}: a {ir.metadata.format_description} has no Keras layers to write as {target}; "
            f"convert it to {', '.join(GRAPH_EXPORTERS)}"
        )
    if ir.format == Format.CHECKPOINT.value and not os.path.isfile(ir.path + ".meta"):
        raise UnsupportedError(
            f"{src}: the checkpoint holds variables only (no .meta graph, no architecture); "
            "pass --config model.json|.yaml|.h5|.keras to convert it"
        )
    with _step(report, "freeze", progress):
        frozen = from_ir(ir, options.signature)
    if frozen.saved_model is not None:
        report.details["signature"] = frozen.saved_model[1]

    def reference_runner() -> Any:
        if ir.format == Format.SAVEDMODEL.value:
            from modeltool.runners.savedmodel import SavedModelRunner

            return SavedModelRunner(src, frozen.saved_model[1] if frozen.saved_model else options.signature)
        from modeltool.runners.tfgraph import GraphRunner

        return GraphRunner(frozen, src)

    return _export(frozen, ir, dst, target, GRAPH_EXPORTERS, options, eo, report, progress, reference_runner, None)


def _export(
    native: Any, ir: Model, dst: str, target: str, table: dict[str, str], options: ConvertOptions,
    eo: ExportOptions, report: ConvertReport, progress: Progress | None, reference_runner: Callable[[], Any],
    roundtrip_check: Callable[[str], dict[str, Any]] | None,
) -> ConvertReport:  # fmt: skip
    """Write to a temporary sibling, check it (verification or round trip), rename into place."""
    module_name, func_name = table[target].split(":")
    exporter = getattr(importlib.import_module(module_name), func_name)
    try:
        with atomic_path(dst, force=options.force) as tmp:
            with _step(report, "convert", progress):
                report.details = {**report.details, **exporter(native, ir, tmp, eo)}
            report.size_after = path_size(tmp)
            if target not in RUNNABLE:
                if roundtrip_check is not None:
                    with _step(report, "roundtrip", progress):
                        report.details.update(roundtrip_check(tmp))
            elif options.verify and report.details.get("flex_ops"):
                report.warnings.append(
                    "verification skipped: the model needs Select TF (Flex) ops, which neither LiteRT's stock "
                    "interpreter nor tf.lite here can run"
                )
            elif options.verify:
                with _step(report, "verify", progress):
                    report.verification = _verify(reference_runner(), ir, tmp, target, eo, options)
            report.warnings += eo.warnings
            if not report.passed:
                raise _Discard
            report.written = True
    except _Discard:
        pass  # atomic_path removed the temporary output; the report says why
    return report


class _Discard(Exception):
    """Leave the atomic block without moving the output into place."""


def _unrolled(
    build: Callable, ir: Model, custom: dict, options: ConvertOptions, shapes: list | None, report: ConvertReport
) -> Any:
    """The model with RNN layers unrolled: builtin TFLite ops instead of a Flex while-loop."""
    from modeltool.exporters.serving import serving_function

    try:
        native = build(ir, custom_objects=custom, unsafe=options.unsafe, unroll_rnn=True, input_shapes=shapes)
        serving_function(native, ir).get_concrete_function()  # unrolling fails here on unknown timesteps
    except Exception as exc:
        names = [s.name for s in ir.graph.inputs] if ir.graph else ["input"]
        flags = " ".join(f"--input-shape {n}:1,T,F" for n in names)
        raise UsageError(
            f"{ir.path}: TFLite builtin ops need the RNN layers unrolled, which needs a fixed number of timesteps "
            f"and the model leaves them open; pass {flags} "
            "or accept Select TF ops with --allow-flex"
        ) from exc
    report.warnings.append("RNN layers unrolled over their fixed timesteps to stay within TFLite builtin ops")
    return native


def _verify(
    reference: Any, ir: Model, path: str, target: str, eo: ExportOptions, options: ConvertOptions
) -> VerifyReport:
    """Run `reference` (an un-entered runner of the source) and the written file on the same inputs."""
    from modeltool.verify import compare, npz_feed, random_feed

    runner = _target_runner(target, path, eo.device)
    runner.label = eo.final_path or path  # the report names where the file lands, not its temporary name
    tol = tolerance_for(eo.quantize, options.atol, options.rtol)
    with reference as ref, runner as tgt:
        specs = ref.input_specs()
        if options.input_data:
            feed, source = npz_feed(options.input_data, specs), os.path.basename(options.input_data)
        else:
            feed = random_feed(
                specs, others=tgt.input_specs(), ir=ir, seed=eo.seed, batch=options.batch, shapes=eo.input_shapes
            )
            source = f"random, seed {eo.seed}"
        return compare(ref, tgt, feed, tol, input_source=source)


def _target_runner(target: str, path: str, device: str) -> Any:
    if target == "onnx":
        from modeltool.runners.onnxruntime import OnnxRunner

        return OnnxRunner(path, device)
    if target == "tflite":
        from modeltool.runners.tflite import TFLiteRunner

        return TFLiteRunner(path)
    if target == "pb":
        from modeltool.loaders import load
        from modeltool.runners.tfgraph import GraphRunner
        from modeltool.tfgraph.native import from_ir

        return GraphRunner(from_ir(load(path)), path)
    from modeltool.runners.savedmodel import SavedModelRunner

    return SavedModelRunner(path)
