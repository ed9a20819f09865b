"""A `Source`: a model file made runnable and exportable, whatever its format.

Every target is written from what a source provides, through one interface, so each target has one
exporter and `convert` one pipeline:
- `input_specs()` / `output_names()`: the boundary, named as users know it;
- `reference()`: an (un-entered) runner computing what the original file computes: the runtime
  that wrote it where one exists (tf_keras for Keras 2 files, TensorFlow for graph formats);
- `onnx_graph()`: a GraphDef for tf2onnx with its large weights kept out (attached afterwards);
- `frozen()`: the graph with every weight a constant (`.pb`);
- `tflite_converter()`: a TFLite converter ready for modeltool's op set and quantization;
- `write_saved_model()`: a SavedModel with a `serving_default` keyed by the source's names;
- `keras_model()`: Keras layers, for Keras targets (graph sources have none);
- `prepared(target)`: the source as a given target needs it (RNN layers unrolled for TFLite).

A source that can only be run (ONNX, TFLite files) says so through `exportable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeltool.errors import UnsupportedError
from modeltool.ir import Model, TensorSpec
from modeltool.options import CompareOptions, ConvertOptions, Shape
from modeltool.runners.base import Runner


@dataclass
class ExportContext:
    """Per-run state an exporter may need beside the immutable options: where the file finally
    lands (exporters write to a temporary sibling) and the warnings that go into the report."""

    final_path: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class OnnxGraph:
    """What tf2onnx converts: a GraphDef, its boundary tensors with the names users know, the
    placeholders standing for large weights (value holders with `.numpy()`, attached as ONNX
    initializers after conversion) and shape overrides for inputs the user fixed."""

    graph_def: Any
    inputs: dict[str, str]  # graph tensor -> source input name, in order
    outputs: dict[str, str]  # graph tensor -> source output name, in order
    detached: dict[str, Any] = field(default_factory=dict)
    shape_override: dict[str, list] | None = None


class Source:
    """Base class; see the module docstring. `kind` names the family for reports."""

    kind = "source"
    exportable = True
    #: what `materialize` does, as the report's timing names it
    build_step = "load"

    def __init__(self, ir: Model, options: CompareOptions) -> None:
        self.ir = ir
        self.path = ir.path
        self.options = options
        self.notes: list[str] = []  # what reading it changed or dropped, for the report

    # ---------------------------------------------------------------- boundary and reference

    def input_specs(self, shapes: dict[str, Shape] | None = None) -> list[TensorSpec]:
        raise NotImplementedError

    def output_names(self) -> list[str]:
        raise NotImplementedError

    def reference(self) -> Runner:
        raise NotImplementedError

    def materialize(self) -> None:
        """Do the expensive part of opening (rebuild, freeze) now, so the report can time it."""

    def details(self) -> dict[str, Any]:
        """What the report says about the source beside its format (e.g. the signature used)."""
        return {}

    # ---------------------------------------------------------------- what targets are written from

    def prepared(self, target: Any, options: ConvertOptions, context: ExportContext) -> Source:
        """This source as `target` needs it; the default needs nothing."""
        return self

    def onnx_graph(self, options: ConvertOptions, detach_bytes: int) -> OnnxGraph:
        raise self._cannot("ONNX")

    def frozen(self, options: ConvertOptions) -> Any:
        raise self._cannot("a frozen GraphDef")

    def tflite_converter(self, options: ConvertOptions) -> Any:
        raise self._cannot("TFLite")

    def write_saved_model(self, path: str, options: ConvertOptions) -> dict[str, Any]:
        raise self._cannot("a SavedModel")

    def keras_model(self) -> Any:
        raise UnsupportedError(
            f"{self.path}: a {self.ir.metadata.format_description} has no Keras layers to write as a Keras file; "
            "convert it to onnx, tflite, savedmodel or pb"
        )

    def not_exportable(self) -> UnsupportedError:
        """Why nothing can be written from this source (only `RuntimeSource` says so)."""
        return UnsupportedError(f"{self.path}: cannot convert from a {self.ir.metadata.format_description}")

    def _cannot(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.path}: cannot write {what} from a {self.ir.metadata.format_description}")
