"""Frozen GraphDef `.pb` from a Keras model: the serving function with every variable folded.

For runtimes and tools that still want TF1 graphs. Placeholders carry the model's input names
and an Identity per output carries its output name, so `--inputs`/`--outputs` are rarely needed
to use the file. Graph sources (SavedModel, `.pb`, TF1 checkpoint) are written by
`exporters.graph.to_pb` from their own frozen graph.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modeltool.exporters.graph import to_pb
from modeltool.exporters.serving import ExportOptions, input_specs
from modeltool.ir import Model
from modeltool.tfgraph.native import Endpoint, FrozenGraph

NEVER_DETACH = 1 << 62


def keras_frozen(native: Any, ir: Model | None, options: ExportOptions) -> FrozenGraph:
    """A Keras model as a FrozenGraph (all weights constants)."""
    from modeltool.exporters.onnx import frozen_graph

    graph_def, inputs, outputs, _ = frozen_graph(native, ir, replace(options, detach_bytes=NEVER_DETACH))
    specs = {s.name: s for s in input_specs(native, ir, options.input_shapes)}
    ins = [Endpoint(t, n, specs[n].shape if n in specs else None, specs[n].dtype if n in specs else None)
           for t, n in inputs.items()]  # fmt: skip
    outs = [Endpoint(t, n) for t, n in outputs.items()]
    return FrozenGraph(graph_def, ins, outs, ir.path if ir is not None else "model")


def export(native: Any, ir: Model | None, path: str, options: ExportOptions) -> dict[str, Any]:
    """The `.pb` target for Keras sources."""
    return to_pb(keras_frozen(native, ir, options), ir, path, options)
