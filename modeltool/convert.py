"""`convert`: one pipeline from any source to any target.

open the source -> check the target takes the options -> prepare the source for the target ->
export to a temporary sibling -> check it (runnable targets: run beside the source's reference on
the same inputs; Keras targets: read back by Keras 3) -> rename into place. Any failure, a
verification mismatch included, leaves nothing at the destination. Which exporter writes a target
and what it takes is the table in `modeltool.targets`; what a source provides is `modeltool.sources`.
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
from modeltool.loaders.keras_common import path_size
from modeltool.options import ConvertOptions
from modeltool.sizes import format_size
from modeltool.sources import ExportContext, Source, open_source
from modeltool.targets import TARGETS, Target, check_target_options, target_for
from modeltool.verify import VerifyReport

Progress = Callable[[str], None]


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
        """The file was verified (or needs no verification) and its numbers agree; an INCONCLUSIVE
        verification keeps the file, with the verdict said (`verdict`, and a warning)."""
        return self.verification is None or self.verification.agrees

    @property
    def verdict(self) -> str:
        return "UNVERIFIED" if self.verification is None else self.verification.verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "verdict": self.verdict,
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
        lines.append(f"size: {format_size(self.size_before)} -> {format_size(self.size_after)}{ratio}")
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
    src: str | os.PathLike, dst: str, options: ConvertOptions | None = None, progress: Progress | None = None
) -> ConvertReport:
    """Convert `src` to `dst` (target from its name or `options.to`); see the module docstring."""
    options = options or ConvertOptions()
    src = os.fspath(src)
    target = target_for(dst, options.to)
    check_destination(dst, options.force)
    check_target_options(target, options)
    final = dst.rstrip("/") or dst
    report = ConvertReport(src, "?", target.value, final)
    with _step(report, "load", progress):
        source = open_source(src, options)
    report.source_format, report.size_before = source.ir.format.value, source.ir.metadata.file_size
    if not source.exportable:
        raise source.not_exportable()
    if TARGETS[target].needs_keras:
        source.keras_model()  # a graph source says here that it has no Keras layers
    context = ExportContext(final)
    if target == Target.TFLITE:  # before the model is built: a model over the limit costs no minutes
        from modeltool.exporters.tflite import check_flatbuffer_size

        check_flatbuffer_size(source.ir, options)
    options = _shapes_from_input_data(source, target, options, context)
    with _step(report, source.build_step, progress):
        source.materialize()
        prepared = source.prepared(target, options, context)
    return _export(prepared, target, dst, options, context, report, progress)


def _shapes_from_input_data(source: Any, target: Target, options: ConvertOptions, context: ExportContext) -> Any:
    """A Keras model with RNN layers to TFLite needs fixed timesteps (its RNNs are unrolled into
    builtin ops); when `--input data.npz` already fixes every input's shape and no --input-shape
    is given, those shapes are the ones, and the report says so."""
    from dataclasses import replace

    from modeltool.sources.keras import has_rnn, ir_boundary_names

    if target != Target.TFLITE or options.input_shapes or not options.input_data or options.allow_flex:
        return options
    if source.kind != "keras" or source.ir.graph is None or not has_rnn(source.ir):
        return options
    from modeltool.feeds import npz_feed
    from modeltool.ir import TensorSpec

    names = ir_boundary_names(source.ir)[0]
    feed = npz_feed(options.input_data, [TensorSpec(n, None, None) for n in names])
    shapes = {n: tuple(int(d) for d in feed[n].shape) for n in names}
    said = ", ".join(f"{n}={','.join(map(str, s))}" for n, s in shapes.items())
    context.warnings.append(f"input shapes fixed from --input {os.path.basename(options.input_data)}: {said}")
    return replace(options, input_shapes=shapes)


def _export(
    source: Source, target: Target, dst: str, options: ConvertOptions, context: ExportContext,
    report: ConvertReport, progress: Progress | None,
) -> ConvertReport:  # fmt: skip
    """Write to a temporary sibling, check it (verification or round trip), rename into place."""
    spec = TARGETS[target]
    module_name, func_name = spec.exporter.split(":")
    exporter = getattr(importlib.import_module(module_name), func_name)
    try:
        with atomic_path(dst, force=options.force) as tmp:
            with _step(report, "convert", progress):
                report.details = {**source.details(), **report.details, **exporter(source, tmp, options, context)}
            report.size_after = path_size(tmp)
            if not spec.runnable:
                from modeltool.exporters.keras import roundtrip

                with _step(report, "roundtrip", progress):
                    details, loaded = roundtrip(source, target, tmp)
                    report.details.update(details)
                if options.verify and loaded is not None and target in (Target.KERAS, Target.H5, Target.WEIGHTS_H5):
                    with _step(report, "verify", progress):
                        report.verification = _verify_loaded(source, loaded, options, context)
            elif options.verify and report.details.get("flex_ops"):
                context.warnings.append(
                    "verification skipped: the model needs Select TF (Flex) ops, which neither LiteRT's stock "
                    "interpreter nor tf.lite here can run"
                )
            elif options.verify:
                with _step(report, "verify", progress):
                    report.verification = _verify(source, tmp, options, context)
                if report.verification.verdict == "INCONCLUSIVE":
                    context.warnings.append(
                        "INCONCLUSIVE: the file is written, but its outputs agree without proving anything ("
                        + "; ".join(report.verification.inconclusive) + "); verify it on real inputs: "
                        f"modeltool verify {report.source} {report.output} --input real.npz"
                    )
                if options.html:
                    from modeltool.verify import write_html

                    write_html(report.verification, source.ir, options.html, options.force)
            if not report.passed:
                raise _Discard
            report.written = True
    except _Discard:
        pass  # atomic_path removed the temporary output; the report says why
    finally:
        report.warnings += [w for w in source.notes + context.warnings if w not in report.warnings]
    return report


class _Discard(Exception):
    """Leave the atomic block without moving the output into place."""


def _verify_loaded(source: Source, loaded: Any, options: ConvertOptions, context: ExportContext) -> VerifyReport:
    """A Keras file written by `convert`, as Keras loaded it back, run against the source's
    reference (the writer's runtime reading the original) on the same inputs."""
    from modeltool.runners.keras import KerasRunner
    from modeltool.verify import compare_runners, tolerance_for

    runner = KerasRunner(loaded, source.ir, label=context.final_path)
    return compare_runners(source.reference(), runner, options, tolerance_for(None, options.atol, options.rtol),
                           ir=source.ir)  # fmt: skip


def _verify(source: Source, path: str, options: ConvertOptions, context: ExportContext) -> VerifyReport:
    """Run the source's reference and the written file on the same inputs."""
    from modeltool.options import CompareOptions
    from modeltool.sources import open_runner
    from modeltool.verify import compare_runners, tolerance_for

    runner = open_runner(path, CompareOptions(device=options.device))  # the source's model options are not its
    runner.label = context.final_path  # the report names where the file lands, not its temporary name
    if options.inputs_as_nchw or options.outputs_as_nchw:
        # a channels-first file is fed the reference's inputs transposed, and its outputs transposed
        # back: the same numbers compared exactly, never a looser tolerance
        from modeltool.runners.layout import ChannelsFirstRunner

        runner = ChannelsFirstRunner(runner, options.inputs_as_nchw, options.outputs_as_nchw)
    tol = tolerance_for(options.quantize, options.atol, options.rtol)
    return compare_runners(source.reference(), runner, options, tol, ir=source.ir,
                           localize="on_failure" if options.localize else "never")
