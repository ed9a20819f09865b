"""TensorFlow graph files (SavedModel signature, frozen GraphDef, TF1 checkpoint with its `.meta`) as
a source: frozen once into a `FrozenGraph` (`tfgraph.native`), every target written from it, and the
reference is TensorFlow running the file itself (the SavedModel through its signature, as TF Serving
would; a GraphDef or TF1 checkpoint in a session)."""

from __future__ import annotations

from typing import Any

from modeltool.deps import require
from modeltool.errors import UnsupportedError, UsageError
from modeltool.formats import Format
from modeltool.ir import Model, TensorSpec
from modeltool.options import CompareOptions, ConvertOptions, Shape
from modeltool.runners.base import Runner
from modeltool.sources.base import OnnxGraph, Source


class GraphSource(Source):
    kind = "tensorflow graph"
    build_step = "freeze"

    def __init__(self, ir: Model, options: CompareOptions) -> None:
        import os

        super().__init__(ir, options)
        if ir.metadata.format == Format.CHECKPOINT and not os.path.isfile(ir.path + ".meta"):
            raise UnsupportedError(
                f"{ir.path}: the checkpoint holds variables only (no .meta graph, no architecture); "
                "pass --config model.json|.yaml|.h5|.keras to convert it"
            )
        self._frozen: Any = None

    @property
    def graph(self) -> Any:
        """The FrozenGraph, frozen on first use (TensorFlow imported then)."""
        if self._frozen is None:
            from modeltool.tfgraph.native import from_ir

            self._frozen = from_ir(self.ir, self.options.signature, self.options.fixed_inputs)
            self.notes += [f"inputs baked in as constants (--fix-input): {n.split(': ', 1)[1]}"
                           for n in self._frozen.notes if n.startswith("fixed: ")]  # fmt: skip
        return self._frozen

    @property
    def signature(self) -> str | None:
        return self.graph.saved_model[1] if self.graph.saved_model else None

    def materialize(self) -> None:
        self.graph  # noqa: B018 - freezes it

    def details(self) -> dict[str, Any]:
        return {"signature": self.signature} if self.signature else {}

    def input_specs(self, shapes: dict[str, Shape] | None = None) -> list[TensorSpec]:
        given = self._shapes(shapes or {})
        return [TensorSpec(e.name, given[e.name], e.dtype) for e in self.graph.inputs]

    def output_names(self) -> list[str]:
        return [e.name for e in self.graph.outputs]

    def reference(self) -> Runner:
        if self.ir.metadata.format == Format.SAVEDMODEL:
            from modeltool.runners.savedmodel import SavedModelRunner

            return SavedModelRunner(self.path, self.signature)
        from modeltool.runners.tfgraph import GraphRunner

        runner = GraphRunner(self.graph, self.path)
        runner.ir = self.ir  # type: ignore[attr-defined] - the IR's Embedding bounds shape the random feed
        return runner

    def _shapes(self, shapes: dict[str, Shape]) -> dict[str, Shape | None]:
        """{input name: shape}: the user's --input-shape over the source's own; an input the graph
        states no shape for takes the shape of the user's --input data, when given."""
        unknown = set(shapes) - {e.name for e in self.graph.inputs}
        if unknown:
            names = ", ".join(e.name for e in self.graph.inputs)
            raise UsageError(f"--input-shape: no input named {', '.join(sorted(unknown))}; inputs: {names}")
        out = {e.name: shapes.get(e.name, e.shape) for e in self.graph.inputs}
        if self.options.input_data and any(v is None for v in out.values()):
            from modeltool.feeds import npz_feed

            data = npz_feed(self.options.input_data, [TensorSpec(n, None, None) for n in out])
            out = {n: tuple(data[n].shape) if shape is None else shape for n, shape in out.items()}
        return out

    # ---------------------------------------------------------------- targets

    def prepared(self, target: Any, options: ConvertOptions, context: Any) -> Source:
        """Converters need every input's rank: an input of unknown shape is a request for one, made
        before any converter runs (tf2onnx would otherwise write rank-dependent ops ONNX lacks). A
        detected output that is a training loss (it reads the labels) is refused with the output to
        name instead."""
        loss = [w for w in self.ir.warnings if "probably the loss" in w]
        if loss and not options.outputs:
            raise UsageError(f"{self.path}: {loss[0]}")
        shapes = self._shapes(options.input_shapes)
        unknown = [name for name, shape in shapes.items() if shape is None]
        if unknown:
            flags = " ".join(f"--input-shape {n}=D1,D2,.." for n in unknown)
            raise UsageError(
                f"{self.path}: the graph states no shape for input(s) {', '.join(unknown)}; give them: {flags} "
                f"(or --inputs {unknown[0]}=D1xD2..)"
            )
        return self

    def onnx_graph(self, options: ConvertOptions, detach_bytes: int) -> OnnxGraph:
        fg = self.graph
        shapes = self._shapes(options.input_shapes)
        override = {e.tensor: list(shapes[e.name]) for e in fg.inputs if e.name in options.input_shapes}
        graph_def, detached = detach_constants(fg.graph_def, detach_bytes, override)
        return OnnxGraph(graph_def, {e.tensor: e.name for e in fg.inputs}, {e.tensor: e.name for e in fg.outputs},
                         detached, override or None)  # fmt: skip

    def frozen(self, options: ConvertOptions) -> Any:
        return self.graph

    def tflite_converter(self, options: ConvertOptions, static_lists: bool = False) -> Any:
        """The converter of this graph; `static_lists` converts a recurrent loop over tensor lists to
        builtin ops: the batch, where the graph leaves it open, is fixed to 1 (the loop's element
        shapes then follow from the inputs; the converter assumes exactly that batch)."""
        tf = require("tensorflow", "converting to TFLite")
        if static_lists:
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [self._serving(options).get_concrete_function()], tf.Module())
            converter._experimental_default_to_single_batch_in_tensor_list_ops = True  # noqa: SLF001 - TF's own flag
            return converter
        if self.graph.saved_model is not None and not options.input_shapes:
            sm_path, signature = self.graph.saved_model
            return tf.lite.TFLiteConverter.from_saved_model(sm_path, signature_keys=[signature])
        serve = self._serving(options)
        return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], tf.Module())

    def write_saved_model(self, path: str, options: ConvertOptions) -> dict[str, Any]:
        tf = require("tensorflow", "exporting a SavedModel")
        module = tf.Module()
        module.serve = self._serving(options, module)
        # custom gradients (swish's, in every EfficientNet) capture tensors the frozen graph folded into
        # constants, which `save` refuses ("Found invalid capture"); an inference export needs none
        no_gradients = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        tf.saved_model.save(module, path, signatures={"serving_default": module.serve}, options=no_gradients)
        return {"signature": "serving_default", "inputs": [e.name for e in self.graph.inputs],
                "outputs": self.output_names()}  # fmt: skip

    def single_batch_shapes(self, options: ConvertOptions) -> dict[str, Shape]:
        """--input-shape with every input whose batch is open fixed to batch 1."""
        shapes = self._shapes(options.input_shapes)
        out = dict(options.input_shapes)
        for name, shape in shapes.items():
            if shape is not None and len(shape) > 0 and shape[0] is None:
                out[name] = (1, *shape[1:])
        return out

    def _serving(self, options: ConvertOptions, module: Any = None) -> Any:
        """A tf.function over the frozen graph: named inputs in, `{output name: tensor}` out."""
        from modeltool.tfgraph.native import wrapped_function

        tf = require("tensorflow")
        fn = wrapped_function(self.graph)
        if module is not None:
            module.graph_fn = fn  # tracked, so the SavedModel holds the graph's function
        shapes = self._shapes(options.input_shapes)
        specs = [tf.TensorSpec(None if shapes[e.name] is None else list(shapes[e.name]), e.dtype or "float32",
                               name=e.name) for e in self.graph.inputs]  # fmt: skip
        names = self.output_names()

        @tf.function(input_signature=specs)
        def serve(*args: Any) -> dict[str, Any]:
            return dict(zip(names, fn(*args)))

        return serve


class _ConstValue:
    """A detached constant's value, read from the GraphDef's bytes only when attached."""

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def numpy(self) -> Any:
        import numpy as np

        from modeltool.tfgraph.protos import dtype_name

        dims = [d.size for d in self.tensor.tensor_shape.dim]
        return np.frombuffer(self.tensor.tensor_content, dtype=dtype_name(self.tensor.dtype)).reshape(dims)


def detach_constants(
    graph_def: Any, limit: int, shapes: dict[str, list] | None = None
) -> tuple[Any, dict[str, _ConstValue]]:
    """A copy of the graph whose float constants over `limit` bytes are Placeholders, and their
    values by tensor name: tf2onnx then converts a light graph (it copies every constant through its
    passes, ~45x the weights) and the values are attached as initializers afterwards, as for Keras
    sources. Constants stay where they are in the source graph (the reference still runs it).
    `shapes` ({input tensor: shape}, the user's) are written into the Placeholders, so shape
    computations over them (`Rank`, `Shape` of an input stated without one) fold to constants."""
    tf = require("tensorflow")
    light = tf.compat.v1.GraphDef()
    light.versions.CopyFrom(graph_def.versions)
    light.library.CopyFrom(graph_def.library)
    detached: dict[str, _ConstValue] = {}
    for node in graph_def.node:
        value = node.attr["value"].tensor if node.op == "Const" and "value" in node.attr else None
        if value is not None and len(value.tensor_content) > limit and value.dtype in (1, 2, 19):  # f32 f64 f16
            placeholder = light.node.add(name=node.name, op="Placeholder")
            placeholder.attr["dtype"].type = value.dtype
            placeholder.attr["shape"].shape.CopyFrom(value.tensor_shape)
            detached[f"{node.name}:0"] = _ConstValue(value)
        else:
            copy = light.node.add()
            copy.CopyFrom(node)
            given = (shapes or {}).get(f"{node.name}:0")
            if node.op == "Placeholder" and given is not None:
                copy.attr["shape"].shape.CopyFrom(tf.TensorShape(given).as_proto())
    return light, detached
