"""TFLite files as a source: runnable in LiteRT, and convertible to ONNX through tf2onnx's TFLite
front end (`tf2onnx.convert.from_tflite`, which reads the flatbuffer itself: float, dynamic-range and
fully quantized models, SignatureDefs, TFLite's detection post-processing op). The ONNX file takes
the names LiteRT gives the boundary (the SignatureDef's, else the tensors'), so the two files are
verified against each other input by input on the same feeds. Other targets are refused: a `.tflite`
holds no Keras layers and no TensorFlow graph to rebuild them from."""

from __future__ import annotations

from typing import Any

from modeltool.errors import UnsupportedError
from modeltool.options import ConvertOptions
from modeltool.sources.base import ExportContext, Source
from modeltool.sources.runtime import RuntimeSource


class TFLiteSource(RuntimeSource):
    kind = "tflite"
    exportable = True

    def prepared(self, target: Any, options: ConvertOptions, context: ExportContext) -> Source:
        if target.value != "onnx":
            raise UnsupportedError(
                f"{self.path}: a TFLite flatbuffer converts to ONNX only (it holds no Keras layers or TensorFlow "
                f"graph to write {target.value} from)"
            )
        return self

    def keras_model(self) -> Any:
        raise UnsupportedError(f"{self.path}: a TFLite flatbuffer holds no Keras layers")

    def boundary(self) -> tuple[list[str], list[str]]:
        """(input names, output names) as LiteRT gives them, in the flatbuffer's subgraph order (the
        order tf2onnx writes them in)."""
        from modeltool.runners.tflite import TFLiteRunner

        with TFLiteRunner(self.path) as runner:
            interp = runner.interpreter
            order_in = [d["index"] for d in interp.get_input_details()]
            order_out = [d["index"] for d in interp.get_output_details()]
            details_in, details_out, names_in, names_out = runner._details()  # noqa: SLF001 - the runner's own view
        by_index_in = {d["index"]: n for d, n in zip(details_in, names_in)}
        by_index_out = {d["index"]: n for d, n in zip(details_out, names_out)}
        return [by_index_in[i] for i in order_in], [by_index_out[i] for i in order_out]
