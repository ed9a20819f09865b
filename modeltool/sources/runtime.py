"""ONNX and TFLite files as sources: runnable in their runtimes (onnxruntime, LiteRT). An ONNX file
is never exported from (it is the deployment format); a TFLite file converts to ONNX
(`sources/tflite.py`)."""

from __future__ import annotations

from modeltool.errors import UnsupportedError
from modeltool.formats import Format
from modeltool.ir import TensorSpec
from modeltool.options import Shape
from modeltool.runners.base import Runner
from modeltool.sources.base import Source


class RuntimeSource(Source):
    kind = "runtime"
    exportable = False

    def input_specs(self, shapes: dict[str, Shape] | None = None) -> list[TensorSpec]:
        return list(self.ir.graph.inputs) if self.ir.graph is not None else []

    def output_names(self) -> list[str]:
        return [s.name for s in self.ir.graph.outputs] if self.ir.graph is not None else []

    def reference(self) -> Runner:
        if self.ir.metadata.format == Format.ONNX:
            from modeltool.runners.onnxruntime import OnnxRunner

            return OnnxRunner(self.path, self.options.device)
        from modeltool.runners.tflite import TFLiteRunner

        return TFLiteRunner(self.path)

    def not_exportable(self) -> UnsupportedError:
        return UnsupportedError(
            f"{self.path}: converting from {self.ir.metadata.format_description} is not supported (an ONNX file is "
            "the deployment format: inspect and verify it)"
        )
